//! The gateway's sr25519 signing key.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use subxt_signer::SecretUri;
use subxt_signer::sr25519::{Keypair, PublicKey, Signature};

use crate::error::{Error, Result};
use crate::types::AccountId;

/// An sr25519 key pair that signs transactions (CESS backend) and blocks (dev ledger).
///
/// Loaded from a secret URI: a `0x` + 64-hex seed, a BIP-39 mnemonic, or a dev URI such as
/// `//Alice`, each optionally followed by derivation junctions and `///password`. The secret is
/// never logged: `Debug` shows only the account.
#[derive(Clone)]
pub struct GatewayKey {
    pair: Keypair,
}

impl GatewayKey {
    /// Parses a secret URI (see the type docs).
    pub fn from_uri(uri: &str) -> Result<Self> {
        // The parse errors of subxt-signer may quote the input; never pass them on.
        let uri = SecretUri::from_str(uri.trim()).map_err(|_| Error::Key {
            reason: "not a seed, mnemonic or secret URI".into(),
        })?;
        let pair = Keypair::from_uri(&uri).map_err(|_| Error::Key {
            reason: "the secret does not give an sr25519 key (bad seed length or mnemonic)".into(),
        })?;
        Ok(GatewayKey { pair })
    }

    /// Reads a secret URI from a file (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Key {
            reason: format!("cannot read key file {}: {}", path.display(), e.kind()),
        })?;
        Self::from_uri(&text)
    }

    /// One of the well-known development keys (`//Alice`, `//Bob`, ...). Never use on a real
    /// network: everyone knows these secrets.
    pub fn dev(name: &str) -> Self {
        // The dev phrase and a plain junction always parse.
        Self::from_uri(&format!("//{name}")).unwrap_or_else(|_| GatewayKey {
            pair: subxt_signer::sr25519::dev::alice(),
        })
    }

    /// The account this key signs for.
    pub fn account(&self) -> AccountId {
        AccountId(self.pair.public_key().0)
    }

    /// Signs `message` (sr25519 with the "substrate" context).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair.sign(message).0
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.pair
    }
}

/// Verifies a signature made by [`GatewayKey::sign`].
pub fn verify_signature(account: &AccountId, message: &[u8], signature: &[u8; 64]) -> bool {
    subxt_signer::sr25519::verify(&Signature(*signature), message, &PublicKey(account.0))
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const DEV_PHRASE: &str =
        "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

    #[test]
    fn loads_dev_uri_mnemonic_and_seed() {
        let alice = GatewayKey::dev("Alice");
        assert_eq!(hex::encode(alice.account().0), ALICE);
        let from_phrase = GatewayKey::from_uri(&format!("{DEV_PHRASE}//Alice")).unwrap();
        assert_eq!(from_phrase.account(), alice.account());
        // The mini-secret seed of //Alice (the Substrate docs' well-known dev seed).
        let seed = "0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a1fbafaa1f0fbcdbdf5bd9c";
        let _ = GatewayKey::from_uri(seed).unwrap();
    }

    #[test]
    fn key_file_errors_do_not_echo_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "0xnot-a-secret-but-still-private\n").unwrap();
        let err = GatewayKey::from_file(&path).unwrap_err().to_string();
        assert!(!err.contains("private"), "{err}");
        let missing = GatewayKey::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, Error::Key { .. }));
        let debug = format!("{:?}", GatewayKey::dev("Bob"));
        assert!(debug.contains("cX"), "{debug}");
    }

    #[test]
    fn signatures_verify() {
        let key = GatewayKey::dev("Alice");
        let sig = key.sign(b"block");
        assert!(verify_signature(&key.account(), b"block", &sig));
        assert!(!verify_signature(&key.account(), b"other", &sig));
    }
}
