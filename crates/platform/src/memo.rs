//! A bounded in-memory map for values that never change once written
//! (a product, an order's contact): reading one from memory saves a round
//! trip, and since the value cannot change, a remembered one is never stale.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Remembers up to `capacity` entries, then starts over: simpler than an
/// LRU, and a miss only costs the read it would have cost anyway.
pub struct Memo<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize) -> Self {
        Memo {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key`, looked up by any borrowed form of it (a `&str`
    /// for a `String` key), so that a lookup allocates nothing.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.lock().expect("memo lock").get(key).cloned()
    }

    pub fn remember(&self, entries: impl IntoIterator<Item = (K, V)>) {
        let mut map = self.entries.lock().expect("memo lock");
        for (key, value) in entries {
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("memo lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_it_was_given() {
        let memo = Memo::new(10);
        memo.remember([(1, "one"), (2, "two")]);
        assert_eq!(memo.get(&1), Some("one"));
        assert_eq!(memo.get(&2), Some("two"));
        assert_eq!(memo.get(&3), None);
    }

    #[test]
    fn starts_over_when_full_and_never_exceeds_its_capacity() {
        let memo = Memo::new(3);
        memo.remember([(1, 'a'), (2, 'b'), (3, 'c')]);
        memo.remember([(4, 'd')]);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(&4), Some('d'));
        assert_eq!(memo.get(&1), None);
    }
}
