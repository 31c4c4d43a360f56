//! A value derived from inputs, kept with the inputs it was built from, so that it is built
//! again only when they change: a drawing on its plan and collapsed set, a dry run on its
//! plan, options and calibration. One entry: the page shows one version at a time.

use std::rc::Rc;

/// The same `Rc` in both, or none in either: equality for values never changed once built
/// (or changed only through `Rc::make_mut`, which copies one another state still holds), where
/// comparing them would cost more than it saves.
pub fn same<T: ?Sized>(a: Option<&Rc<T>>, b: Option<&Rc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Rc::ptr_eq(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// An `Rc` compared by value (the same `Rc` without looking), for a [`Memo`]'s key: a value
/// built again equal to the last one (a plan from a text whose comment changed) is a hit.
#[derive(Debug, Clone)]
pub struct ByValue<T>(pub Rc<T>);

impl<T: PartialEq> PartialEq for ByValue<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// The last value built, with its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Memo<K, V> {
    last: Option<(K, V)>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo { last: None }
    }
}

impl<K: PartialEq, V> Memo<K, V> {
    /// The value built from `key`, if that is the last one built.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.last.as_ref().filter(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The last value built, whatever it was built from (shown until a new one is ready).
    pub fn last(&self) -> Option<&V> {
        self.last.as_ref().map(|(_, v)| v)
    }

    pub fn last_mut(&mut self) -> Option<&mut V> {
        self.last.as_mut().map(|(_, v)| v)
    }

    /// The value of `key`: the kept one when it was built from an equal key, else `build`'s.
    pub fn get_or_build(&mut self, key: K, build: impl FnOnce(&K) -> V) -> &V {
        if self.get(&key).is_none() {
            let value = build(&key);
            self.last = Some((key, value));
        }
        // Set just above when it was not there.
        let (_, value) = self.last.as_ref().expect("a value was just kept");
        value
    }

    /// Keeps a value built elsewhere (outside the reducer) from `key`.
    pub fn insert(&mut self, key: K, value: V) {
        self.last = Some((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_value_is_built_again_only_when_its_key_changes() {
        let builds = Cell::new(0);
        let square = |k: &u32| {
            builds.set(builds.get() + 1);
            k * k
        };
        let mut memo = Memo::default();
        assert_eq!(memo.last(), None);
        assert_eq!(*memo.get_or_build(3, square), 9);
        assert_eq!(*memo.get_or_build(3, square), 9);
        assert_eq!(builds.get(), 1, "the same key reads the kept value");
        assert_eq!(*memo.get_or_build(4, square), 16);
        assert_eq!(builds.get(), 2, "a changed key builds again");
        assert_eq!(memo.get(&3), None, "one entry: the older value is gone");
        memo.insert(5, 1);
        assert_eq!((memo.get(&5), memo.last()), (Some(&1), Some(&1)));
    }
}
