//! Algorithm state kept beside a cached partition between the kernel rounds of a fit.
//!
//! A kernel is a pure function of its request and the partition in what it answers; some
//! algorithms still keep work between rounds to answer faster (k-means' distance bounds). That
//! state belongs to the algorithm, not to the partition: the partition holds one opaque slot,
//! the algorithm decides the type it keeps there, and nothing in `data` knows any algorithm.

use std::any::Any;
use std::sync::{Mutex, TryLockError};

/// One algorithm's state for one partition, of a type the algorithm chooses. Not part of the
/// partition's value: a clone starts empty and equality ignores it. A round of another
/// algorithm (another state type) replaces it.
#[derive(Debug, Default)]
pub struct StateSlot(Mutex<Option<Box<dyn Any + Send>>>);

impl StateSlot {
    /// Runs `f` with the slot's state of type `T` (a default one if the slot is empty or held
    /// another type), or with `None` when another round holds the slot (or a panic poisoned
    /// it): the caller must then answer without state.
    pub fn with<T: Default + Send + 'static, R>(&self, f: impl FnOnce(Option<&mut T>) -> R) -> R {
        match self.0.try_lock() {
            Ok(mut guard) => {
                if !guard.as_ref().is_some_and(|s| s.is::<T>()) {
                    *guard = Some(Box::new(T::default()));
                }
                f(guard.as_mut().and_then(|s| s.downcast_mut::<T>()))
            }
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => f(None),
        }
    }

    /// `f` of the state of type `T`, if the slot holds one and no round holds the slot.
    pub fn peek<T: 'static, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        match self.0.try_lock() {
            Ok(guard) => guard.as_ref().and_then(|s| s.downcast_ref::<T>()).map(f),
            Err(_) => None,
        }
    }
}

impl Clone for StateSlot {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for StateSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_slot_keeps_one_type_at_a_time_and_is_skipped_while_held() {
        let slot = StateSlot::default();
        assert_eq!(slot.peek::<u32, _>(|v| *v), None);
        slot.with::<u32, _>(|v| *v.unwrap() += 5);
        assert_eq!(slot.peek::<u32, _>(|v| *v), Some(5));
        // Another algorithm's state replaces it.
        slot.with::<String, _>(|s| s.unwrap().push('x'));
        assert_eq!(slot.peek::<u32, _>(|v| *v), None);
        assert_eq!(slot.peek::<String, _>(Clone::clone).as_deref(), Some("x"));
        // A round that finds the slot held runs without state.
        slot.with::<String, _>(|_| slot.with::<String, _>(|inner| assert!(inner.is_none())));
        assert_eq!(slot.clone().peek::<String, _>(Clone::clone), None);
    }
}
