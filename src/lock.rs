//! The one poison-tolerant lock of the broker, the coordinator and the CLI (the harness has its
//! own, `harness::lock`, since neither side may depend on the other). A lock is poisoned when a
//! thread panicked while holding it; everything guarded this way (partition state, the replica
//! map, the metadata snapshot, the coordinator session, group shards, bench counters) is left
//! as consistent as each step left it, so the process carries on with the data rather than
//! spreading one panic to every other task.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, taking the data of a poisoned one.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `rwlock`, taking the data of a poisoned one.
pub fn read<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `rwlock`, taking the data of a poisoned one.
pub fn write<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn poisoned_locks_still_give_their_data() {
        let mutex = Arc::new(Mutex::new(7));
        let rwlock = Arc::new(RwLock::new(1));
        let (poisoned_mutex, poisoned_rwlock) = (Arc::clone(&mutex), Arc::clone(&rwlock));
        let panicked = std::thread::spawn(move || {
            let _mutex_guard = poisoned_mutex.lock();
            let _rwlock_guard = poisoned_rwlock.write();
            panic!("poison both");
        })
        .join();
        assert!(panicked.is_err());
        assert!(mutex.is_poisoned() && rwlock.is_poisoned());
        *lock(&mutex) += 1;
        *write(&rwlock) += 1;
        assert_eq!((*lock(&mutex), *read(&rwlock)), (8, 2));
    }
}
