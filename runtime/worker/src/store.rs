//! The object store: task results by wire id, in memory until the in-memory bytes pass a
//! threshold, then the oldest results spill to files. Reads of spilled results come from
//! disk (they are not brought back). Not a cache: objects live until the scheduler
//! releases them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::PathBuf;

use bytes::Bytes;

pub struct Store {
    memory: HashMap<u64, Bytes>,
    /// Insertion order of in-memory objects (entries of removed objects are skipped).
    order: VecDeque<u64>,
    memory_bytes: u64,
    spilled: HashMap<u64, u64>,
    spilled_bytes: u64,
    spill_dir: PathBuf,
    /// In-memory bytes above which objects spill.
    spill_above: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot spill result {id:x} to {path}: {source}")]
    Spill {
        id: u64,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Store {
    pub fn new(spill_dir: PathBuf, spill_above: u64) -> Self {
        Store {
            memory: HashMap::new(),
            order: VecDeque::new(),
            memory_bytes: 0,
            spilled: HashMap::new(),
            spilled_bytes: 0,
            spill_dir,
            spill_above,
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.spill_dir.join(format!("{id:016x}"))
    }

    pub fn put(&mut self, id: u64, data: Bytes) -> Result<(), StoreError> {
        self.remove(id);
        self.memory_bytes += data.len() as u64;
        self.memory.insert(id, data);
        self.order.push_back(id);
        self.spill()
    }

    fn spill(&mut self) -> Result<(), StoreError> {
        self.spill_while_above(self.spill_above).map(|_| ())
    }

    /// Spills the oldest in-memory results until at most `bytes` of them remain in memory
    /// (the memory policy's answer to the pod using too much). Returns the bytes spilled.
    pub fn spill_down_to(&mut self, bytes: u64) -> Result<u64, StoreError> {
        self.spill_while_above(bytes)
    }

    fn spill_while_above(&mut self, above: u64) -> Result<u64, StoreError> {
        let before = self.spilled_bytes;
        while self.memory_bytes > above {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            let Some(data) = self.memory.remove(&id) else {
                continue;
            };
            let path = self.path(id);
            if let Err(source) =
                std::fs::create_dir_all(&self.spill_dir).and_then(|()| std::fs::write(&path, &data))
            {
                self.memory.insert(id, data);
                self.order.push_front(id);
                return Err(StoreError::Spill { id, path, source });
            }
            self.memory_bytes -= data.len() as u64;
            self.spilled_bytes += data.len() as u64;
            self.spilled.insert(id, data.len() as u64);
            tracing::debug!(id, bytes = data.len(), "spilled a result to disk");
        }
        if self.order.len() > 2 * self.memory.len() + 1024 {
            let memory = &self.memory;
            self.order.retain(|id| memory.contains_key(id));
        }
        Ok(self.spilled_bytes - before)
    }

    pub fn get(&self, id: u64) -> Option<Bytes> {
        if let Some(data) = self.memory.get(&id) {
            return Some(data.clone());
        }
        if self.spilled.contains_key(&id) {
            return std::fs::read(self.path(id)).ok().map(Bytes::from);
        }
        None
    }

    pub fn contains(&self, id: u64) -> bool {
        self.memory.contains_key(&id) || self.spilled.contains_key(&id)
    }

    pub fn remove(&mut self, id: u64) {
        if let Some(data) = self.memory.remove(&id) {
            self.memory_bytes -= data.len() as u64;
        } else if let Some(size) = self.spilled.remove(&id) {
            self.spilled_bytes -= size;
            let _ = std::fs::remove_file(self.path(id));
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    pub fn len(&self) -> usize {
        self.memory.len() + self.spilled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the threshold the oldest results go to disk, still readable, and removal
    /// deletes their files.
    #[test]
    fn spills_oldest_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::new(dir.path().to_path_buf(), 100);
        store.put(1, Bytes::from(vec![1u8; 60])).expect("put");
        store.put(2, Bytes::from(vec![2u8; 60])).expect("put");
        assert_eq!(store.spilled_bytes(), 60);
        assert_eq!(store.memory_bytes(), 60);
        assert_eq!(store.get(1).expect("spilled is readable")[0], 1);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        store.remove(1);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        assert_eq!(store.spilled_bytes(), 0);
        assert!(store.contains(2) && !store.contains(1));
    }

    /// Spilling down to a figure moves the oldest results out until it is met.
    #[test]
    fn spills_down_to_a_figure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::new(dir.path().to_path_buf(), u64::MAX);
        for id in 1..=4 {
            store
                .put(id, Bytes::from(vec![id as u8; 100]))
                .expect("put");
        }
        assert_eq!(store.spill_down_to(150).expect("spill"), 300);
        assert_eq!((store.memory_bytes(), store.spilled_bytes()), (100, 300));
        assert_eq!(store.get(1).expect("spilled is readable")[0], 1);
        assert_eq!(store.spill_down_to(150).expect("spill"), 0);
    }
}
