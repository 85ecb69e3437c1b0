//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes), on the blocking pool so a slow hash never stalls the runtime.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use crate::domain::Password;

/// The PHC string of a fresh salted hash of `password`.
pub async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let salt = SaltString::encode_b64(&bytes)
            .map_err(|error| anyhow::anyhow!("salt encoding failed: {error}"))?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))
    })
    .await?
}

/// Whether `password` matches the PHC string `hash`. When `hash` is `None`
/// (no such account) a dummy hash is checked anyway, so an unknown username
/// takes as long to refuse as a wrong password.
pub async fn verify(password: Password, hash: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                         4dtsS8mHEcVjSLhJfJvvHuXQgGn8vGvHQuzKqr0bTKA";
    let known = hash.is_some();
    let checked = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    known && checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hash(password.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify(password, Some(hash.clone())).await);
        let wrong = Password::parse("wrong horse battery").unwrap();
        assert!(!verify(wrong, Some(hash)).await);
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!verify(password, None).await);
    }
}
