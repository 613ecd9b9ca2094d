//! User, access-key and store management, shared by `deoss admin` and the gateway's first
//! start.

use crate::catalogue::{AccessKeyRecord, Catalogue, CatalogueError, User, now_ms};
use crate::crypto::{MasterKey, random_array};
use crate::s3::auth::secret_context;
use crate::store::StoreInfo;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("no user named {0}")]
    NoSuchUser(String),
    #[error("user {name} still owns {buckets} bucket(s); delete them first")]
    UserOwnsBuckets { name: String, buckets: i64 },
    #[error("no access key {0}")]
    NoSuchKey(String),
    #[error("user names are 1-64 characters of letters, digits, '.', '_', '-' and '@'")]
    BadUserName,
    #[error("invalid chain account {0:?}: give an SS58 address or 0x + 64 hex digits")]
    BadAccount(String),
    #[error("territory names are 1 to 63 bytes")]
    BadTerritory,
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// A new access key pair; the secret is shown once and stored only sealed.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub access_key: String,
    pub secret_key: String,
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_text<const N: usize>(alphabet: &[u8]) -> String {
    // 256 is a multiple of both alphabet sizes' nearest power of two below; reject to stay uniform.
    let mut out = String::with_capacity(N);
    while out.len() < N {
        for b in random_array::<64>() {
            let limit = 256 - 256 % alphabet.len();
            if (b as usize) < limit && out.len() < N {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

pub fn generate_key() -> NewKey {
    NewKey {
        access_key: format!("DK{}", random_text::<18>(KEY_ALPHABET)),
        secret_key: random_text::<40>(SECRET_ALPHABET),
    }
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// Stores a key pair for a user, the secret sealed by the master key.
pub async fn add_key(
    cat: &Catalogue,
    master: &MasterKey,
    user_id: &str,
    key: &NewKey,
) -> Result<(), AdminError> {
    let record = AccessKeyRecord {
        access_key: key.access_key.clone(),
        user_id: user_id.to_string(),
        secret_sealed: master
            .seal_secret(&secret_context(&key.access_key), key.secret_key.as_bytes()),
        created_ms: now_ms(),
    };
    cat.create_key(&record).await?;
    Ok(())
}

/// Creates a user with a first access key.
pub async fn create_user(
    cat: &Catalogue,
    master: &MasterKey,
    name: &str,
) -> Result<(User, NewKey), AdminError> {
    create_user_with(cat, master, name, None, None).await
}

/// Checks a chain account and returns it as CESS SS58 text.
pub fn normalize_account(account: &str) -> Result<String, AdminError> {
    account
        .parse::<deoss_chain_client::AccountId>()
        .map(|a| a.to_string())
        .map_err(|_| AdminError::BadAccount(account.to_string()))
}

/// Creates a user with a first access key, settled on chain as `account` (SS58; `None`: a dev
/// account on the dev ledger) using `territory` by default (`None`: the gateway's default).
pub async fn create_user_with(
    cat: &Catalogue,
    master: &MasterKey,
    name: &str,
    account: Option<&str>,
    territory: Option<&str>,
) -> Result<(User, NewKey), AdminError> {
    if !valid_user_name(name) {
        return Err(AdminError::BadUserName);
    }
    let account = account.map(normalize_account).transpose()?;
    if territory.is_some_and(|t| !(1..=deoss_chain_client::MAX_NAME_LEN).contains(&t.len())) {
        return Err(AdminError::BadTerritory);
    }
    let user = cat
        .create_user_with(name, account.as_deref(), territory)
        .await?
        .ok_or_else(|| AdminError::UserExists(name.to_string()))?;
    let key = generate_key();
    add_key(cat, master, &user.id, &key).await?;
    Ok((user, key))
}

pub async fn create_key(
    cat: &Catalogue,
    master: &MasterKey,
    user_name: &str,
) -> Result<NewKey, AdminError> {
    let user = cat
        .user_by_name(user_name)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(user_name.to_string()))?;
    let key = generate_key();
    add_key(cat, master, &user.id, &key).await?;
    Ok(key)
}

pub async fn delete_user(cat: &Catalogue, name: &str) -> Result<(), AdminError> {
    match cat.delete_user(name).await? {
        Ok(true) => Ok(()),
        Ok(false) => Err(AdminError::NoSuchUser(name.to_string())),
        Err(buckets) => Err(AdminError::UserOwnsBuckets {
            name: name.to_string(),
            buckets,
        }),
    }
}

pub async fn delete_key(cat: &Catalogue, access_key: &str) -> Result<(), AdminError> {
    if cat.delete_key(access_key).await? {
        Ok(())
    } else {
        Err(AdminError::NoSuchKey(access_key.to_string()))
    }
}

/// Access keys of a user (without secrets).
pub async fn list_keys(
    cat: &Catalogue,
    user_name: &str,
) -> Result<Vec<AccessKeyRecord>, AdminError> {
    let user = cat
        .user_by_name(user_name)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(user_name.to_string()))?;
    Ok(cat.list_keys(&user.id).await?)
}

/// Every fragment store the catalogue has registered, oldest first, configured here or not.
pub async fn list_stores(cat: &Catalogue) -> Result<Vec<StoreInfo>, AdminError> {
    Ok(cat.list_stores().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_look_right() {
        let k = generate_key();
        assert_eq!(k.access_key.len(), 20);
        assert!(k.access_key.starts_with("DK"));
        assert_eq!(k.secret_key.len(), 40);
        assert_ne!(generate_key().secret_key, k.secret_key);
    }

    #[tokio::test]
    async fn users_keys_and_refusals() {
        let (_dir, cat) = crate::catalogue::tests::sqlite_catalogue().await;
        let master = MasterKey::from_bytes([5; 32]);
        let (user, key) = create_user(&cat, &master, "carol").await.unwrap();
        assert!(matches!(
            create_user(&cat, &master, "carol").await,
            Err(AdminError::UserExists(_))
        ));
        assert!(matches!(
            create_user(&cat, &master, "bad name").await,
            Err(AdminError::BadUserName)
        ));
        let stored = cat.access_key(&key.access_key).await.unwrap().unwrap();
        assert_eq!(stored.user_id, user.id);
        // The catalogue holds the secret only sealed.
        assert!(
            !stored
                .secret_sealed
                .windows(key.secret_key.len())
                .any(|w| w == key.secret_key.as_bytes())
        );
        let opened = master
            .open_secret(&secret_context(&key.access_key), &stored.secret_sealed)
            .unwrap();
        assert_eq!(opened, key.secret_key.as_bytes());
        let second = create_key(&cat, &master, "carol").await.unwrap();
        assert_eq!(list_keys(&cat, "carol").await.unwrap().len(), 2);
        delete_key(&cat, &second.access_key).await.unwrap();
        assert!(matches!(
            delete_key(&cat, &second.access_key).await,
            Err(AdminError::NoSuchKey(_))
        ));
        delete_user(&cat, "carol").await.unwrap();
        // Chain accounts are checked and kept as CESS SS58 text.
        let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let (dave, _) = create_user_with(&cat, &master, "dave", Some(alice), Some("t1"))
            .await
            .unwrap();
        let stored = cat.user_by_id(&dave.id).await.unwrap().unwrap();
        assert!(stored.chain_account.as_deref().unwrap().starts_with("cX"));
        assert_eq!(stored.territory.as_deref(), Some("t1"));
        assert!(matches!(
            create_user_with(&cat, &master, "erin", Some("nope"), None).await,
            Err(AdminError::BadAccount(_))
        ));
        assert!(matches!(
            delete_user(&cat, "carol").await,
            Err(AdminError::NoSuchUser(_))
        ));
    }
}
