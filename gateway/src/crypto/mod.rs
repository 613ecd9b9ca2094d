//! Encryption at rest: data keys, their wrapping, and the chunked stream cipher.
//!
//! Every object version gets a random 256-bit data key. The content key that seals the chunks is
//! derived from it with HKDF, and the data key itself is stored only wrapped: by the gateway's
//! master key (SSE-S3, the default) or by the customer's key (SSE-C, which is never stored; only
//! a salted HMAC of it is kept, to tell a wrong key from a missing one). The ETag of an SSE-C
//! object is a keyed hash too, not the MD5 of its plaintext ([`MasterKey::sse_c_etag`]).

pub mod envelope;

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub use envelope::{Binding, ChunkCipher};

/// Errors of the crypto layer. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("authentication failed for chunk {chunk}: data is corrupt or was tampered with")]
    Authentication { chunk: u64 },
    #[error("sealing failed")]
    Seal,
    #[error("ciphertext is truncated")]
    Truncated,
    #[error("extent too large for the nonce counter")]
    TooLarge,
    #[error("wrapped key has an unknown format")]
    UnknownFormat,
    #[error("the key does not unwrap this data key")]
    WrongKey,
    #[error("master key file {path}: {reason}")]
    MasterKey { path: String, reason: String },
}

/// Header of a wrapped data key. // format constant: never change
const WRAP_MAGIC: &[u8; 4] = b"DKW1";
const WRAP_AAD_MAGIC: &[u8] = b"deoss/wrap/v1";
const WRAPPED_LEN: usize = WRAP_MAGIC.len() + 1 + NONCE_LEN + 32 + 16;

/// Who wrapped a data key. // format constant: never change (stored as the byte after the magic)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapKind {
    Master = 1,
    Customer = 2,
}

/// A random 256-bit data key of one object version.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl DataKey {
    pub fn generate() -> Self {
        Self(random_array())
    }

    /// The AES-256-GCM key that seals the object's chunks.
    pub fn content_key(&self) -> [u8; 32] {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"deoss/v1").extract(&self.0);
        let okm = prk.expand(&[b"content"], Len32).expect("hkdf length");
        let mut out = [0u8; 32];
        okm.fill(&mut out).expect("hkdf fill");
        out
    }
}

pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("system randomness");
    out
}

fn wrap_aad(binding: &Binding<'_>) -> Vec<u8> {
    let mut aad = WRAP_AAD_MAGIC.to_vec();
    for field in [binding.bucket, binding.key, binding.version_id] {
        aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    aad
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
}

/// Wraps `dk` under `kek` (the master key or a customer key).
pub fn wrap_key(kek: &[u8; 32], kind: WrapKind, dk: &DataKey, binding: &Binding<'_>) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random_array();
    let mut body = dk.0.to_vec();
    aead(kek)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(binding)),
            &mut body,
        )
        .expect("seal data key");
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(WRAP_MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out
}

/// Which kind of key wrapped this blob.
pub fn wrap_kind(wrapped: &[u8]) -> Result<WrapKind, CryptoError> {
    if wrapped.len() != WRAPPED_LEN || &wrapped[..4] != WRAP_MAGIC {
        return Err(CryptoError::UnknownFormat);
    }
    match wrapped[4] {
        1 => Ok(WrapKind::Master),
        2 => Ok(WrapKind::Customer),
        _ => Err(CryptoError::UnknownFormat),
    }
}

pub fn unwrap_key(
    kek: &[u8; 32],
    wrapped: &[u8],
    binding: &Binding<'_>,
) -> Result<DataKey, CryptoError> {
    wrap_kind(wrapped)?;
    let nonce: [u8; NONCE_LEN] = wrapped[5..5 + NONCE_LEN]
        .try_into()
        .expect("length checked");
    let mut body = wrapped[5 + NONCE_LEN..].to_vec();
    let plain = aead(kek)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(binding)),
            &mut body,
        )
        .map_err(|_| CryptoError::WrongKey)?;
    Ok(DataKey(
        plain.try_into().map_err(|_| CryptoError::UnknownFormat)?,
    ))
}

/// The gateway's master key, and what is derived from it.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    hmac: hmac::Key,
    etag: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Header of a sealed secret (an access key's secret in the catalogue). // format constant: never change
const SECRET_MAGIC: &[u8; 4] = b"SEC1";

/// Header of a salted customer-key MAC: magic | salt | HMAC(magic | salt | key). MACs stored
/// before it are a bare 32-byte HMAC of the key. // format constant: never change
const CUSTOMER_MAC_MAGIC: &[u8; 4] = b"CKM2";
const CUSTOMER_MAC_SALT_LEN: usize = 16;
const CUSTOMER_MAC_LEN: usize = CUSTOMER_MAC_MAGIC.len() + CUSTOMER_MAC_SALT_LEN + 32;
/// Domain of the SSE-C ETag hash. // format constant: never change
const SSE_C_ETAG_DOMAIN: &[u8] = b"deoss/sse-c-etag/v1";

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"deoss/v1").extract(&key);
        let derive = |info: &[u8]| {
            let info = [info];
            let okm = prk.expand(&info, Len32).expect("hkdf length");
            let mut out = [0u8; 32];
            okm.fill(&mut out).expect("hkdf fill");
            hmac::Key::new(hmac::HMAC_SHA256, &out)
        };
        Self {
            key,
            hmac: derive(b"sse-c-hmac"), // format constant: never change
            etag: derive(b"sse-c-etag"), // format constant: never change
        }
    }

    /// Loads the key from `path` (64 hex characters), creating it with mode 0600 if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::MasterKey {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes =
                    hex::decode(text.trim()).map_err(|_| err("not 64 hex characters".into()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("not 64 hex characters".into()))?;
                Ok(Self::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = random_array();
                write_private_file(path, hex::encode(key).as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                Ok(Self::from_bytes(key))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// A salted HMAC of an SSE-C customer key, stored to recognise the key on later requests.
    /// The salt is fresh per object, so objects under one key do not show it by equal MACs.
    pub fn customer_key_mac(&self, customer_key: &[u8; 32]) -> Vec<u8> {
        let salt: [u8; CUSTOMER_MAC_SALT_LEN] = random_array();
        let mut out = Vec::with_capacity(CUSTOMER_MAC_LEN);
        out.extend_from_slice(CUSTOMER_MAC_MAGIC);
        out.extend_from_slice(&salt);
        let tag = hmac::sign(&self.hmac, &[&out[..], customer_key].concat());
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Whether `customer_key` is the key `mac` was made from (a salted MAC, or an unsalted one
    /// stored before salts were).
    pub fn verify_customer_key(&self, customer_key: &[u8; 32], mac: &[u8]) -> bool {
        if mac.len() == CUSTOMER_MAC_LEN && mac.starts_with(CUSTOMER_MAC_MAGIC) {
            let (head, tag) = mac.split_at(CUSTOMER_MAC_LEN - 32);
            return hmac::verify(&self.hmac, &[head, customer_key].concat(), tag).is_ok();
        }
        mac.len() == 32 && hmac::verify(&self.hmac, customer_key, mac).is_ok()
    }

    /// The ETag of SSE-C data (an object, or a part when `part` > 0) whose plaintext MD5 is
    /// `md5`: 32 hex digits of a hash keyed by the master key, as S3's SSE-C ETags are not the
    /// MD5 of the plaintext. The version id makes equal plaintexts look unrelated.
    pub fn sse_c_etag(&self, version_id: &str, part: u32, md5: &[u8; 16]) -> String {
        let mut ctx = hmac::Context::with_key(&self.etag);
        ctx.update(SSE_C_ETAG_DOMAIN);
        ctx.update(&(version_id.len() as u32).to_be_bytes());
        ctx.update(version_id.as_bytes());
        ctx.update(&part.to_be_bytes());
        ctx.update(md5);
        hex::encode(&ctx.sign().as_ref()[..16])
    }

    /// Seals a small secret for storage (access key secrets in the catalogue).
    pub fn seal_secret(&self, context: &str, secret: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random_array();
        let mut body = secret.to_vec();
        aead(&self.key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .expect("seal secret");
        let mut out = SECRET_MAGIC.to_vec();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    pub fn open_secret(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 4 + NONCE_LEN + 16 || &sealed[..4] != SECRET_MAGIC {
            return Err(CryptoError::UnknownFormat);
        }
        let nonce: [u8; NONCE_LEN] = sealed[4..4 + NONCE_LEN].try_into().expect("length checked");
        let mut body = sealed[4 + NONCE_LEN..].to_vec();
        let plain = aead(&self.key)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| CryptoError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

/// Writes a file readable only by its owner (0600), replacing nothing: fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding<'static> {
        Binding {
            bucket: "b",
            key: "k",
            version_id: "v1",
            part: 0,
        }
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let master = MasterKey::from_bytes([3; 32]);
        let dk = DataKey::generate();
        let wrapped = wrap_key(master.bytes(), WrapKind::Master, &dk, &binding());
        assert_eq!(&wrapped[..4], b"DKW1");
        assert_eq!(wrap_kind(&wrapped).unwrap(), WrapKind::Master);
        let back = unwrap_key(master.bytes(), &wrapped, &binding()).unwrap();
        assert_eq!(back.content_key(), dk.content_key());
        let other = Binding {
            key: "other",
            ..binding()
        };
        assert!(matches!(
            unwrap_key(master.bytes(), &wrapped, &other),
            Err(CryptoError::WrongKey)
        ));
        assert!(matches!(
            unwrap_key(&[4; 32], &wrapped, &binding()),
            Err(CryptoError::WrongKey)
        ));
    }

    #[test]
    fn customer_key_mac_and_secrets() {
        let master = MasterKey::from_bytes([1; 32]);
        let mac = master.customer_key_mac(&[8; 32]);
        assert_eq!(&mac[..4], b"CKM2");
        assert!(master.verify_customer_key(&[8; 32], &mac));
        assert!(!master.verify_customer_key(&[9; 32], &mac));
        // Salted: the same key gives another MAC each time, and each verifies.
        let again = master.customer_key_mac(&[8; 32]);
        assert_ne!(mac, again);
        assert!(master.verify_customer_key(&[8; 32], &again));
        // A MAC from another master key, or cut short, does not.
        let other = MasterKey::from_bytes([2; 32]).customer_key_mac(&[8; 32]);
        assert!(!master.verify_customer_key(&[8; 32], &other));
        assert!(!master.verify_customer_key(&[8; 32], &mac[..mac.len() - 1]));
        // MACs stored before salts (a bare HMAC of the key) still verify.
        let legacy = hmac::sign(&master.hmac, &[8; 32]).as_ref().to_vec();
        assert!(master.verify_customer_key(&[8; 32], &legacy));
        assert!(!master.verify_customer_key(&[9; 32], &legacy));
        let sealed = master.seal_secret("ak", b"secret");
        assert_eq!(master.open_secret("ak", &sealed).unwrap(), b"secret");
        assert!(master.open_secret("other", &sealed).is_err());
    }

    #[test]
    fn sse_c_etags_are_opaque_and_stable() {
        let master = MasterKey::from_bytes([1; 32]);
        let md5 = [0xd4; 16];
        let etag = master.sse_c_etag("v1", 0, &md5);
        assert_eq!(etag.len(), 32);
        assert!(etag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(etag, hex::encode(md5));
        assert_eq!(etag, master.sse_c_etag("v1", 0, &md5));
        assert_ne!(etag, master.sse_c_etag("v2", 0, &md5));
        assert_ne!(etag, master.sse_c_etag("v1", 1, &md5));
        assert_ne!(etag, master.sse_c_etag("v1", 0, &[0xd5; 16]));
        assert_ne!(
            etag,
            MasterKey::from_bytes([2; 32]).sse_c_etag("v1", 0, &md5)
        );
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
