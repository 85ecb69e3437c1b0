//! Sockets per user on this instance: one token could otherwise open any
//! number of them (1,500 connected before this bound), each with its
//! buffers and tasks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{domain::UserId, locks::LockExt};

/// The open sockets of each user, at most `max` each.
pub struct SocketsPerUser {
    max: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// One open socket's place in its user's count, given back when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SocketSlot(#[allow(dead_code, reason = "held for its Drop")] Arc<Slot>);

struct Slot {
    user: UserId,
    counts: Arc<SocketsPerUser>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock_or_recover();
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl SocketsPerUser {
    /// At most `max` sockets per user.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::default(),
        })
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more socket of `user`, or `None` when `user` has
    /// `max` open already.
    pub fn open(self: &Arc<Self>, user: UserId) -> Option<SocketSlot> {
        let mut open = self.open.lock_or_recover();
        let count = open.entry(user).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(SocketSlot(Arc::new(Slot {
            user,
            counts: self.clone(),
        })))
    }

    /// Users with a socket open here.
    pub fn users(&self) -> usize {
        self.open.lock_or_recover().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_max_places_and_a_dropped_one_frees_its_place() {
        let counts = SocketsPerUser::new(2);
        let (ada, bob) = (UserId::random(), UserId::random());
        let first = counts.open(ada).unwrap();
        let second = counts.open(ada).unwrap();
        assert!(counts.open(ada).is_none());
        assert!(counts.open(bob).is_some(), "other users are not affected");
        let copy = first.clone();
        drop(first);
        assert!(counts.open(ada).is_none(), "a clone still holds the place");
        drop(copy);
        let third = counts.open(ada).unwrap();
        drop((second, third));
        assert_eq!(
            counts.users(),
            0,
            "no entry is left for users without sockets"
        );
    }
}
