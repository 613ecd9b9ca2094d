//! The keyring: how an object version's data key is wrapped, and unwrapped again.
//!
//! A data key has one or more wraps, each a row of the catalogue: under the gateway's master key
//! (the default), under an SSE-C customer key (with a salted commitment to that key, so a wrong
//! key is refused before anything is decrypted), and later under an owner's Umbral key (the
//! sharing issue), for owner-encrypted buckets where the gateway holds no wrap it can open
//! alone. Every read and write finds its data key through here, whatever wraps it has.

use super::{CustomerKey, Error, Result};
use crate::catalogue::KeyWrapRecord;
use crate::crypto::{Binding, DataKey, MasterKey, WrapKind, unwrap_key, wrap_key};

/// A wrap under the gateway's master key.
pub(crate) const MASTER: &str = "master";
/// A wrap under an SSE-C customer key; its commitment recognises the key.
pub(crate) const CUSTOMER: &str = "customer";

/// Wraps and unwraps data keys.
#[derive(Debug, Clone)]
pub(crate) struct Keyring {
    master: MasterKey,
}

impl Keyring {
    pub(crate) fn new(master: MasterKey) -> Self {
        Self { master }
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The wraps of a new version's data key: under the customer key when one is given (then
    /// only the customer can read it, as SSE-C promises), else under the master key.
    pub(crate) fn wrap_new(
        &self,
        dk: &DataKey,
        binding: &Binding<'_>,
        ck: Option<&CustomerKey>,
    ) -> Vec<KeyWrapRecord> {
        vec![match ck {
            Some(ck) => KeyWrapRecord {
                kind: CUSTOMER.into(),
                wrapped: wrap_key(&ck.key, WrapKind::Customer, dk, binding),
                commitment: Some(self.master.customer_key_mac(&ck.key)),
            },
            None => KeyWrapRecord {
                kind: MASTER.into(),
                wrapped: wrap_key(self.master.bytes(), WrapKind::Master, dk, binding),
                commitment: None,
            },
        }]
    }

    /// Whether reading data under `wraps` needs an SSE-C key.
    pub(crate) fn needs_customer_key(wraps: &[KeyWrapRecord]) -> bool {
        !wraps.iter().any(|w| w.kind == MASTER) && wraps.iter().any(|w| w.kind == CUSTOMER)
    }

    /// Whether the request's SSE-C key (or its absence) fits the wraps, before anything is read:
    /// SSE-C objects need their key, and other objects refuse one.
    pub(crate) fn check(&self, wraps: &[KeyWrapRecord], ck: Option<&CustomerKey>) -> Result<()> {
        let customer = wraps.iter().find(|w| w.kind == CUSTOMER);
        match (customer, ck) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(Error::InvalidRequest(
                "the object was not stored with a customer key; do not send SSE-C headers".into(),
            )),
            (Some(_), None) => Err(Error::SseCustomerKeyMissing),
            (Some(w), Some(k)) => {
                let fits = w
                    .commitment
                    .as_deref()
                    .is_some_and(|c| self.master.verify_customer_key(&k.key, c));
                if fits {
                    Ok(())
                } else {
                    Err(Error::SseCustomerKeyMismatch)
                }
            }
        }
    }

    /// The data key, from the wrap the request can open.
    pub(crate) fn unwrap(
        &self,
        wraps: &[KeyWrapRecord],
        binding: &Binding<'_>,
        ck: Option<&CustomerKey>,
    ) -> Result<DataKey> {
        self.check(wraps, ck)?;
        let (kind, kek) = match ck {
            Some(ck) => (CUSTOMER, &ck.key),
            None => (MASTER, self.master.bytes()),
        };
        let wrap = wraps
            .iter()
            .find(|w| w.kind == kind)
            .ok_or_else(|| Error::DataLoss(format!("the data key has no {kind} wrap")))?;
        Ok(unwrap_key(kek, &wrap.wrapped, binding)?)
    }
}

#[cfg(test)]
mod tests {
    use super::{CUSTOMER, Keyring, MASTER};
    use crate::crypto::{Binding, DataKey, MasterKey};
    use crate::object::{CustomerKey, Error};

    fn binding() -> Binding<'static> {
        Binding {
            bucket: "b",
            key: "k",
            version_id: "v",
            part: 0,
        }
    }

    fn customer(byte: u8) -> CustomerKey {
        CustomerKey {
            key: [byte; 32],
            key_md5: String::new(),
        }
    }

    #[test]
    fn wraps_open_only_for_the_right_key() {
        let ring = Keyring::new(MasterKey::from_bytes([7; 32]));
        let dk = DataKey::generate();
        let master = ring.wrap_new(&dk, &binding(), None);
        assert_eq!(master.len(), 1);
        assert_eq!(master[0].kind, MASTER);
        let opened = ring.unwrap(&master, &binding(), None).unwrap();
        assert_eq!(opened.content_key(), dk.content_key());
        assert!(!Keyring::needs_customer_key(&master));
        let refused = ring.unwrap(&master, &binding(), Some(&customer(1)));
        assert!(matches!(refused, Err(Error::InvalidRequest(_))));

        let sse_c = ring.wrap_new(&dk, &binding(), Some(&customer(1)));
        assert_eq!(sse_c[0].kind, CUSTOMER);
        assert!(Keyring::needs_customer_key(&sse_c));
        let opened = ring.unwrap(&sse_c, &binding(), Some(&customer(1))).unwrap();
        assert_eq!(opened.content_key(), dk.content_key());
        assert!(matches!(
            ring.unwrap(&sse_c, &binding(), None),
            Err(Error::SseCustomerKeyMissing)
        ));
        assert!(matches!(
            ring.unwrap(&sse_c, &binding(), Some(&customer(2))),
            Err(Error::SseCustomerKeyMismatch)
        ));
        // The binding is part of the wrap: a wrap moved to another object does not open.
        let elsewhere = Binding {
            key: "other",
            ..binding()
        };
        assert!(ring.unwrap(&sse_c, &elsewhere, Some(&customer(1))).is_err());
    }
}
