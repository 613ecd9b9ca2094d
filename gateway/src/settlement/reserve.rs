//! Territory space held by this gateway's uploads, so that admission is a reservation and not
//! only a check: uploads racing for the last bytes of a territory cannot all be admitted.
//!
//! An upload reserves the space its storage order will lock (see `upload_space`) when it is
//! admitted. The chain counts that space only once the order is declared, so a committed
//! object's reservation is kept until the settlement worker has declared its order (or given up
//! on it); an upload that fails, or an object with nothing to declare, gives it back at once.
//!
//! A territory's figures from the chain are cached for a few seconds. When a declared order's
//! reservation is given back, its territory's *epoch* moves on: an answer from the chain asked
//! before that may not count the order yet, so admission asks again rather than count the
//! order nowhere. (An answer asked after the order was declared but before its reservation is
//! given back counts it twice, for a moment: the safe side.)
//!
//! Reservations live in memory: they are per gateway (gateways sharing a catalogue do not see
//! each other's), and after a restart the orders still in the outbox are not held until they
//! are declared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deoss_chain_client::AccountId;

/// A territory: its owner and its name.
pub(crate) type TerritoryKey = (AccountId, String);

/// Bytes held and epoch, by territory.
#[derive(Debug, Default)]
struct State {
    held: HashMap<TerritoryKey, u64>,
    epochs: HashMap<TerritoryKey, u64>,
}

type Shared = Arc<Mutex<State>>;

/// Space reserved in a territory; given back when the last clone is dropped. The default holds
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Reservation(Option<Arc<Held>>);

#[derive(Debug)]
struct Held {
    state: Shared,
    key: TerritoryKey,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut state = self.state.lock().expect("poisoned");
        if let Some(total) = state.held.get_mut(&self.key) {
            *total = total.saturating_sub(self.bytes);
            if *total == 0 {
                state.held.remove(&self.key);
            }
        }
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.0.as_ref().map_or(0, |h| h.bytes)
    }
}

/// What this gateway holds, by territory, and the reservations of committed objects waiting
/// for their declaration, by fid.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    state: Shared,
    awaiting: Mutex<HashMap<String, Reservation>>,
    /// Woken when a declaration's reservation is given back.
    released: tokio::sync::Notify,
}

impl Reservations {
    /// The epoch of `key`: take it before asking the chain about the territory.
    pub(crate) fn epoch(&self, key: &TerritoryKey) -> u64 {
        let state = self.state.lock().expect("poisoned");
        state.epochs.get(key).copied().unwrap_or(0)
    }

    /// Reserves `bytes` in `key` if `fits(bytes already held there)` allows it; checking and
    /// reserving are one step, under one lock. `Ok(None)` when `seen_epoch` is given and is no
    /// longer the territory's: the chain's answer must be asked again.
    pub(crate) fn reserve<E>(
        &self,
        key: TerritoryKey,
        bytes: u64,
        seen_epoch: Option<u64>,
        fits: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<Option<Reservation>, E> {
        let mut state = self.state.lock().expect("poisoned");
        let epoch = state.epochs.get(&key).copied().unwrap_or(0);
        if seen_epoch.is_some_and(|seen| seen != epoch) {
            return Ok(None);
        }
        fits(state.held.get(&key).copied().unwrap_or(0))?;
        *state.held.entry(key.clone()).or_default() += bytes;
        Ok(Some(Reservation(Some(Arc::new(Held {
            state: self.state.clone(),
            key,
            bytes,
        })))))
    }

    /// Bytes held in `key`.
    #[cfg(test)]
    pub(crate) fn held(&self, key: &TerritoryKey) -> u64 {
        let state = self.state.lock().expect("poisoned");
        state.held.get(key).copied().unwrap_or(0)
    }

    /// Whether a committed object's reservation in `key` is waiting for its declaration: until
    /// the worker records it settled, the chain may already count that order too.
    pub(crate) fn awaiting_in(&self, key: &TerritoryKey) -> bool {
        let awaiting = self.awaiting.lock().expect("poisoned");
        awaiting
            .values()
            .any(|r| r.0.as_ref().is_some_and(|h| &h.key == key))
    }

    /// Waits until a declaration's reservation is given back (or `at_most` passes).
    pub(crate) async fn released(&self, at_most: std::time::Duration) {
        let _ = tokio::time::timeout(at_most, self.released.notified()).await;
    }

    /// Keeps `reservation` until [`Reservations::settled`] is called for `fid`.
    pub(crate) fn await_declaration(&self, fid: String, reservation: Reservation) {
        if reservation.0.is_some() {
            let mut awaiting = self.awaiting.lock().expect("poisoned");
            awaiting.insert(fid, reservation);
        }
    }

    /// The order of `fid` is settled (declared or failed): gives its space back, after moving
    /// its territory's epoch on. Returns the territory it was held in.
    pub(crate) fn settled(&self, fid: &str) -> Option<TerritoryKey> {
        let held = self.awaiting.lock().expect("poisoned").remove(fid)?;
        let key = held.0.as_ref()?.key.clone();
        *self
            .state
            .lock()
            .expect("poisoned")
            .epochs
            .entry(key.clone())
            .or_default() += 1;
        drop(held);
        self.released.notify_waiters();
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> TerritoryKey {
        (AccountId([1; 32]), name.to_string())
    }

    #[test]
    fn reservations_count_until_dropped_or_settled() {
        let r = Reservations::default();
        let fits = |limit: u64| move |held: u64| if held < limit { Ok(()) } else { Err(held) };
        let reserve = |name: &str, limit: u64| r.reserve(key(name), 10, None, fits(limit));
        let a = reserve("t", 15).unwrap().unwrap();
        let b = reserve("t", 15).unwrap().unwrap();
        assert_eq!(r.held(&key("t")), 20);
        assert_eq!(reserve("t", 15).unwrap_err(), 20);
        // Another territory is not affected.
        assert_eq!(reserve("u", 15).unwrap().unwrap().bytes(), 10);
        assert_eq!(r.held(&key("u")), 0, "dropped at once");
        drop(a);
        assert_eq!(r.held(&key("t")), 10);
        // A clone keeps the space held; handed over, it lasts until its order is settled.
        let epoch = r.epoch(&key("t"));
        r.await_declaration("fid".into(), b.clone());
        drop(b);
        assert_eq!(r.held(&key("t")), 10);
        assert_eq!(r.settled("fid"), Some(key("t")));
        assert_eq!(r.held(&key("t")), 0);
        assert_eq!(r.settled("fid"), None);
        // An answer from the chain taken before that is not used.
        assert!(
            r.reserve(key("t"), 10, Some(epoch), fits(15))
                .unwrap()
                .is_none()
        );
        let now = r.epoch(&key("t"));
        assert!(
            r.reserve(key("t"), 10, Some(now), fits(15))
                .unwrap()
                .is_some()
        );
    }
}
