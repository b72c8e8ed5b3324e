//! The object store: task results by wire id. A result is in one of four places: in the
//! worker's memory (bytes a builtin made, or fetched from a peer), live in the executor
//! process that made it (not written anywhere yet: the executor pool writes it into the
//! shared-memory directory when another process must read it), in the worker's
//! shared-memory directory (a file an executor wrote and sealed: executors map it
//! read-only, nothing is copied through the worker), or spilled to a file on disk. Once
//! the in-memory and shared bytes pass a threshold, the oldest results spill (live results
//! are in their executors' memory: the memory policy has them written first). Reads of
//! spilled results come from disk (they are not brought back). Not a cache: objects live
//! until the scheduler releases them, or until an executor holding them live dies (they
//! are then reported lost).
//!
//! Not here: the format of a value's bytes (opaque to the worker; Python's is in
//! python/shoal/_objects.py), choosing what to spill under memory pressure (memory.rs).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Where one result is.
enum Object {
    Memory(Bytes),
    /// Kept live by the executor that made it; a file of this many bytes once written.
    Live(u64),
    /// A sealed file of this many bytes in the shared-memory directory.
    Shared(u64),
    /// A file of this many bytes in the spill directory.
    Spilled(u64),
}

/// Where a result can be read from, handed out so that it is read outside the store's lock.
pub enum Located {
    Memory(Bytes),
    File(PathBuf),
    /// Live in an executor: ask the pool to write it into the store, then locate it again.
    Live,
}

impl Located {
    pub fn read(self) -> io::Result<Bytes> {
        match self {
            Located::Memory(data) => Ok(data),
            Located::File(path) => std::fs::read(path).map(Bytes::from),
            Located::Live => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the value is live in an executor and not written yet",
            )),
        }
    }
}

pub struct Store {
    objects: HashMap<u64, Object>,
    /// Insertion order of in-memory and shared objects (entries of removed or spilled
    /// objects are skipped).
    order: VecDeque<u64>,
    memory_bytes: u64,
    live_bytes: u64,
    shared_bytes: u64,
    spilled_bytes: u64,
    spill_dir: PathBuf,
    /// The shared-memory directory executors write results into (`None`: results come
    /// back as bytes).
    shared_dir: Option<PathBuf>,
    /// In-memory plus shared bytes above which objects spill.
    spill_above: u64,
    /// Results that left shared memory since `take_moved` was last called.
    moved: Vec<u64>,
    /// Live results whose executor died before writing them, since `take_lost`.
    lost: Vec<u64>,
    /// Inputs fetched from peers, put in shared memory (`INPUTS/<id>`) for the running
    /// tasks that read them: their size and how many such tasks.
    inputs: HashMap<u64, (u64, usize)>,
    inputs_bytes: u64,
    /// Bytes written into the shared-memory directory so far.
    written_bytes: u64,
}

/// The subdirectory of the shared-memory directory holding inputs fetched from peers.
pub const INPUTS: &str = "in";
/// Fetched inputs at least this large go into shared memory (as executors' results do:
/// python/shoal/_objects.py MIN_BUFFER).
const SHARE_INPUTS_FROM: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot spill result {id:x} to {path}: {source}")]
    Spill {
        id: u64,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the executor said it wrote result {id:x} to the shared-memory store, but {path} \
         cannot be read: {source}"
    )]
    Adopt {
        id: u64,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The error kind a task failed with, for its `TaskError` and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Spill { .. } => "SpillFailed",
            StoreError::Adopt { .. } => "StoreFailed",
        }
    }
}

/// Locks the store shared by the session, the data plane and the executor pool (a
/// poisoned lock still holds a consistent store: every change is made whole).
pub fn lock(store: &std::sync::Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes `dir` (and its parents) readable by this user only: spilled values are no one
/// else's to read.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The name of a result's file, in the shared-memory and the spill directory alike.
pub fn file_name(id: u64) -> String {
    format!("{id:016x}")
}

impl Store {
    pub fn new(spill_dir: PathBuf, spill_above: u64, shared_dir: Option<PathBuf>) -> Self {
        Store {
            objects: HashMap::new(),
            order: VecDeque::new(),
            memory_bytes: 0,
            live_bytes: 0,
            shared_bytes: 0,
            spilled_bytes: 0,
            spill_dir,
            shared_dir,
            spill_above,
            moved: Vec::new(),
            lost: Vec::new(),
            inputs: HashMap::new(),
            inputs_bytes: 0,
            written_bytes: 0,
        }
    }

    /// Puts `data`, an input fetched from a peer, into shared memory for one more running
    /// task (written once, then counted). False when it is small, there is no shared
    /// directory, or it cannot be written (the task then gets the bytes).
    pub fn share_input(&mut self, id: u64, data: &Bytes) -> bool {
        if let Some((_, tasks)) = self.inputs.get_mut(&id) {
            *tasks += 1;
            return true;
        }
        let Some(dir) = &self.shared_dir else {
            return false;
        };
        if data.len() < SHARE_INPUTS_FROM {
            return false;
        }
        let dir = dir.join(INPUTS);
        let (temp, path) = (
            dir.join(format!(".tmp-{}", file_name(id))),
            dir.join(file_name(id)),
        );
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&temp, data))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!(path = %path.display(), error = %e, "cannot put a fetched input in shared memory");
            return false;
        }
        self.inputs_bytes += data.len() as u64;
        self.written_bytes += data.len() as u64;
        self.inputs.insert(id, (data.len() as u64, 1));
        true
    }

    /// A task that read a shared fetched input ended; the last one deletes its file.
    pub fn unshare_input(&mut self, id: u64) {
        let Some((size, tasks)) = self.inputs.get_mut(&id) else {
            return;
        };
        *tasks -= 1;
        if *tasks == 0 {
            self.inputs_bytes -= *size;
            self.inputs.remove(&id);
            if let Some(dir) = &self.shared_dir {
                let _ = std::fs::remove_file(dir.join(INPUTS).join(file_name(id)));
            }
            // Executors holding a mapping of it let it go, so that its memory is freed.
            self.moved.push(id);
        }
    }

    /// Bytes of fetched inputs in shared memory (not results: never spilled).
    pub fn shared_input_bytes(&self) -> u64 {
        self.inputs_bytes
    }

    fn spill_path(&self, id: u64) -> PathBuf {
        self.spill_dir.join(file_name(id))
    }

    fn shared_path(&self, id: u64) -> Option<PathBuf> {
        self.shared_dir.as_ref().map(|d| d.join(file_name(id)))
    }

    pub fn put(&mut self, id: u64, data: Bytes) -> Result<(), StoreError> {
        self.remove(id);
        self.memory_bytes += data.len() as u64;
        self.objects.insert(id, Object::Memory(data));
        self.order.push_back(id);
        self.spill()
    }

    /// Records a result its executor keeps live (a file of `size` bytes once written).
    pub fn put_live(&mut self, id: u64, size: u64) {
        self.remove(id);
        self.live_bytes += size;
        self.objects.insert(id, Object::Live(size));
    }

    /// Whether `id` is live in an executor, not written yet.
    pub fn is_live(&self, id: u64) -> bool {
        matches!(self.objects.get(&id), Some(Object::Live(_)))
    }

    /// Whether any result is live in an executor (every live result has large buffers,
    /// so its size is never 0).
    pub fn has_live(&self) -> bool {
        self.live_bytes > 0
    }

    /// Live results, for the memory policy to have them written (and then spilled).
    pub fn live_ids(&self) -> Vec<u64> {
        if !self.has_live() {
            return Vec::new();
        }
        self.objects
            .iter()
            .filter_map(|(id, o)| matches!(o, Object::Live(_)).then_some(*id))
            .collect()
    }

    /// A live result's executor died before writing it: it is gone, and reported lost.
    pub fn lose(&mut self, id: u64) {
        if self.is_live(id) {
            self.remove(id);
            self.lost.push(id);
        }
    }

    /// A lost result released or made again before the scheduler heard of the loss: the
    /// report would be stale (it would drop the new copy).
    fn unlose(&mut self, id: u64) {
        if !self.lost.is_empty() {
            self.lost.retain(|&l| l != id);
        }
    }

    /// Live results lost since the last call (the scheduler must hear of them).
    pub fn take_lost(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.lost)
    }

    /// Deletes a file an executor wrote for a result the store no longer holds (released
    /// while it was being written).
    pub fn discard_file(&self, id: u64) {
        if let Some(path) = self.shared_path(id) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Takes in the sealed file an executor wrote for `id` in the shared-memory
    /// directory; returns its size.
    pub fn adopt(&mut self, id: u64) -> Result<u64, StoreError> {
        let path = self
            .shared_path(id)
            .unwrap_or_else(|| PathBuf::from(file_name(id)));
        let size = std::fs::metadata(&path)
            .map_err(|source| StoreError::Adopt {
                id,
                path: path.clone(),
                source,
            })?
            .len();
        self.unlose(id);
        if let Some(old) = self.objects.remove(&id) {
            self.forget(id, old, false);
        }
        self.shared_bytes += size;
        self.written_bytes += size;
        self.objects.insert(id, Object::Shared(size));
        self.order.push_back(id);
        self.spill()?;
        Ok(size)
    }

    fn spill(&mut self) -> Result<(), StoreError> {
        self.spill_while_above(self.spill_above).map(|_| ())
    }

    /// Spills the oldest in-memory and shared results until at most `bytes` of them remain
    /// (the memory policy's answer to the pod using too much). Returns the bytes spilled.
    pub fn spill_down_to(&mut self, bytes: u64) -> Result<u64, StoreError> {
        self.spill_while_above(bytes)
    }

    fn spill_while_above(&mut self, above: u64) -> Result<u64, StoreError> {
        let before = self.spilled_bytes;
        while self.memory_bytes + self.shared_bytes > above {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            let path = self.spill_path(id);
            let written = match self.objects.get(&id) {
                Some(Object::Memory(data)) => private_dir(&self.spill_dir)
                    .and_then(|()| std::fs::write(&path, data))
                    .map(|()| data.len() as u64),
                // Copied before the shared file goes: an executor that has just been told
                // to read it finds it in the spill directory instead.
                Some(Object::Shared(size)) => {
                    let size = *size;
                    let from = self.shared_path(id).unwrap_or_default();
                    private_dir(&self.spill_dir)
                        .and_then(|()| std::fs::copy(&from, &path))
                        .map(|_| size)
                }
                Some(Object::Live(_) | Object::Spilled(_)) | None => continue,
            };
            let size = match written {
                Ok(size) => size,
                Err(source) => {
                    self.order.push_front(id);
                    return Err(StoreError::Spill { id, path, source });
                }
            };
            if let Some(old) = self.objects.insert(id, Object::Spilled(size)) {
                self.forget(id, old, true);
            }
            self.spilled_bytes += size;
            tracing::debug!(id, bytes = size, "spilled a result to disk");
        }
        if self.order.len() > 2 * self.objects.len() + 1024 {
            let objects = &self.objects;
            self.order.retain(|id| {
                matches!(objects.get(id), Some(Object::Memory(_) | Object::Shared(_)))
            });
        }
        Ok(self.spilled_bytes - before)
    }

    /// Drops the accounting (and the file) of an object that left its place.
    fn forget(&mut self, id: u64, old: Object, moved: bool) {
        match old {
            Object::Memory(data) => self.memory_bytes -= data.len() as u64,
            Object::Live(size) => self.live_bytes -= size,
            Object::Shared(size) => {
                self.shared_bytes -= size;
                if let Some(path) = self.shared_path(id) {
                    let _ = std::fs::remove_file(path);
                }
                if moved {
                    self.moved.push(id);
                }
            }
            Object::Spilled(size) => {
                self.spilled_bytes -= size;
                let _ = std::fs::remove_file(self.spill_path(id));
            }
        }
    }

    /// Where `id` can be read from (read it outside the store's lock).
    pub fn locate(&self, id: u64) -> Option<Located> {
        match self.objects.get(&id)? {
            Object::Memory(data) => Some(Located::Memory(data.clone())),
            Object::Live(_) => Some(Located::Live),
            Object::Shared(_) => self.shared_path(id).map(Located::File),
            Object::Spilled(_) => Some(Located::File(self.spill_path(id))),
        }
    }

    /// The bytes of `id` (read from its file if it has one).
    pub fn get(&self, id: u64) -> Option<Bytes> {
        self.locate(id)?.read().ok()
    }

    /// Whether an executor reads `id` itself: live in an executor (the one holding it
    /// reads the object; the pool has it written for any other), in the shared-memory
    /// directory, or in the spill directory after it was spilled from there.
    pub fn in_files(&self, id: u64) -> bool {
        matches!(
            self.objects.get(&id),
            Some(Object::Live(_) | Object::Shared(_) | Object::Spilled(_))
        )
    }

    pub fn contains(&self, id: u64) -> bool {
        self.objects.contains_key(&id)
    }

    pub fn remove(&mut self, id: u64) {
        self.unlose(id);
        if let Some(old) = self.objects.remove(&id) {
            if matches!(old, Object::Live(_)) {
                // A file its executor may have written just before it went.
                self.discard_file(id);
            }
            self.forget(id, old, false);
        }
    }

    /// Results that left shared memory for disk, and fetched inputs whose file went, since
    /// the last call (executors holding a mapping of them should let it go).
    pub fn take_moved(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.moved)
    }

    /// Bytes of results held in memory: the worker's own and the shared-memory files.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes + self.shared_bytes
    }

    /// Bytes written into the shared-memory directory so far (results taken in, fetched
    /// inputs shared).
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Bytes of results live in executors (their memory, counted in the executors'
    /// figures, not in `memory_bytes`).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Bytes of results in the shared-memory directory (counted in `memory_bytes` too).
    pub fn shared_bytes(&self) -> u64 {
        self.shared_bytes
    }

    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the threshold the oldest results go to disk (a directory only this user may
    /// read), still readable, and removal deletes their files.
    #[test]
    fn spills_oldest_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let spill = dir.path().join("spill");
        let mut store = Store::new(spill.clone(), 100, None);
        store.put(1, Bytes::from(vec![1u8; 60])).expect("put");
        store.put(2, Bytes::from(vec![2u8; 60])).expect("put");
        assert_eq!(store.spilled_bytes(), 60);
        assert_eq!(store.memory_bytes(), 60);
        assert_eq!(store.get(1).expect("spilled is readable")[0], 1);
        assert_eq!(std::fs::read_dir(&spill).expect("dir").count(), 1);
        let mode = std::fs::metadata(&spill)
            .expect("spill dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        store.remove(1);
        assert_eq!(std::fs::read_dir(&spill).expect("dir").count(), 0);
        assert_eq!(store.spilled_bytes(), 0);
        assert!(store.contains(2) && !store.contains(1));
    }

    /// Spilling down to a figure moves the oldest results out until it is met.
    #[test]
    fn spills_down_to_a_figure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::new(dir.path().to_path_buf(), u64::MAX, None);
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

    /// A store with a spill and a shared-memory directory of its own (kept while in use).
    fn with_shared_dir() -> (tempfile::TempDir, tempfile::TempDir, Store) {
        let spill = tempfile::tempdir().expect("tempdir");
        let shared = tempfile::tempdir().expect("tempdir");
        let store = Store::new(
            spill.path().to_path_buf(),
            u64::MAX,
            Some(shared.path().to_path_buf()),
        );
        (spill, shared, store)
    }

    /// A shared file is adopted at its size, spills to disk with equal bytes (the shared
    /// file gone, the move reported), and removal deletes whichever file holds it.
    #[test]
    fn shared_files_are_adopted_spilled_and_removed() {
        let (spill, shared, mut store) = with_shared_dir();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(shared.path().join(file_name(7)), &data).expect("write");
        assert_eq!(store.adopt(7).expect("adopt"), 1000);
        assert!(store.in_files(7));
        assert_eq!(store.memory_bytes(), 1000);
        assert_eq!(store.get(7).expect("readable"), data);
        assert_eq!(store.spill_down_to(0).expect("spill"), 1000);
        assert!(!shared.path().join(file_name(7)).exists());
        assert_eq!(store.take_moved(), vec![7]);
        assert!(
            store.in_files(7),
            "a spilled shared result is still read from a file"
        );
        assert_eq!(store.get(7).expect("readable after spilling"), data);
        store.remove(7);
        assert_eq!(std::fs::read_dir(spill.path()).expect("dir").count(), 0);
        assert!(store.is_empty() && store.spilled_bytes() == 0);
        assert!(
            store.adopt(8).is_err(),
            "no file: a clear error, nothing stored"
        );
        assert!(!store.contains(8));
    }

    /// A large fetched input is written once however many tasks read it, and its file
    /// goes with the last of them (executors are told); small ones stay bytes.
    #[test]
    fn fetched_inputs_are_shared_once_and_go_with_their_last_reader() {
        let (_spill, shared, mut store) = with_shared_dir();
        let big = Bytes::from(vec![3u8; SHARE_INPUTS_FROM]);
        let path = shared.path().join(INPUTS).join(file_name(9));
        assert!(store.share_input(9, &big) && store.share_input(9, &big));
        assert_eq!(std::fs::read(&path).expect("written"), big);
        assert_eq!(store.shared_input_bytes(), big.len() as u64);
        assert_eq!(store.memory_bytes(), 0, "not a result: never spilled");
        store.unshare_input(9);
        assert!(path.exists(), "a second task still reads it");
        store.unshare_input(9);
        assert!(!path.exists() && store.shared_input_bytes() == 0);
        assert_eq!(store.take_moved(), vec![9]);
        assert!(!store.share_input(10, &Bytes::from_static(b"small")));
    }
}
