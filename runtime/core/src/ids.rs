//! Dense id newtypes for arenas. Ids are indices, never keys: string keys live only at the edge
//! and in the task record (for messages). Not a general-purpose map.

/// Defines a `Copy` id newtype over an unsigned integer with `index()` and `Display`.
macro_rules! define_id_type {
    ($(#[$meta:meta])* $name:ident, $ty:ty) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $ty);

        impl $name {
            /// The arena index of this id.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

define_id_type!(
    /// A task slot in the core's arena. Slots are reused; see [`TaskRef`] for a reference
    /// that detects reuse.
    TaskId,
    u32
);
define_id_type!(
    /// A worker of this scheduler's lifetime (never reused).
    WorkerId,
    u32
);
define_id_type!(
    /// A task prefix (Dask's `key_split` of its key) in the core's prefix arena.
    PrefixId,
    u32
);
define_id_type!(
    /// A client session.
    ClientId,
    u32
);

/// A task slot plus the generation of its occupant: the id on the wire. A message about a
/// task that has since been forgotten (its slot reused) carries an old generation and is
/// recognised as stale.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskRef {
    pub id: TaskId,
    pub generation: u32,
}

impl TaskRef {
    /// The wire form: generation in the high 32 bits, slot in the low 32 bits.
    #[inline]
    pub fn to_wire(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.id.0)
    }

    #[inline]
    pub fn from_wire(wire: u64) -> Self {
        TaskRef {
            id: TaskId(wire as u32),
            generation: (wire >> 32) as u32,
        }
    }
}

/// Compile-time size check for hot structs (fails the build when a struct grows).
#[macro_export]
macro_rules! static_assert_size {
    ($ty:ty, $size:expr) => {
        const _: [(); $size] = [(); ::std::mem::size_of::<$ty>()];
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task reference survives the round trip through its wire form.
    #[test]
    fn task_ref_wire_round_trip() {
        let r = TaskRef {
            id: TaskId(123_456),
            generation: 7,
        };
        assert_eq!(TaskRef::from_wire(r.to_wire()), r);
    }
}
