//! The keys that sign access tokens, and the tokens themselves.
//!
//! Ed25519 (JWS `EdDSA`): small keys, fast and deterministic signatures,
//! no parameter to get wrong. Each key is named by its RFC 7638 thumbprint
//! (`kid`), so a verifier can tell which public key to check a token with.
//! Refresh tokens are 32 random bytes; only their SHA-256 is stored.

use agora_platform::auth::{Claims, Jwk, Role, AUDIENCE, ISSUER};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A signing key as stored: its PKCS#8 document and its public half, both
/// base64url.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub private_key: String,
    pub public_key: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key pair.
    pub fn generate() -> anyhow::Result<SigningKey> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a signing key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("a generated key does not parse"))?;
        let public_key = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(SigningKey {
            kid: thumbprint(&public_key),
            private_key: URL_SAFE_NO_PAD.encode(pkcs8.as_ref()),
            public_key,
        })
    }

    pub fn jwk(&self) -> Jwk {
        Jwk::ed25519(&self.kid, &self.public_key)
    }

    /// An access token for `account_id` with `role`, valid from `now` (unix
    /// seconds) for `ttl_secs`.
    pub fn sign(
        &self,
        account_id: Uuid,
        role: Role,
        now: i64,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: account_id.to_string(),
            role,
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: Uuid::now_v7().to_string(),
        };
        self.sign_claims(&claims)
    }

    /// Signs any claims (the tests make expired and future tokens with it).
    pub fn sign_claims(&self, claims: &Claims) -> anyhow::Result<String> {
        let der = URL_SAFE_NO_PAD.decode(&self.private_key)?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )?)
    }
}

/// RFC 7638: the SHA-256 of the key's required members in lexical order.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A new refresh token: what the client keeps, and the hash stored.
pub fn refresh_token() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a refresh token"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// How a refresh token is found again: its SHA-256, base64url. (A fast
/// hash is right here: the token is 256 random bits, not a password.)
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_platform::auth::{JwkSet, KeySource, Verifier};
    use std::sync::Arc;

    struct Fixed(JwkSet);

    #[async_trait::async_trait]
    impl KeySource for Fixed {
        async fn keys(&self) -> Result<JwkSet, String> {
            Ok(self.0.clone())
        }
    }

    fn verifier(keys: &[&SigningKey]) -> Verifier {
        Verifier::new(Arc::new(Fixed(JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        })))
    }

    fn now() -> i64 {
        agora_platform::clock::now_secs()
    }

    #[tokio::test]
    async fn a_signed_token_verifies_with_the_published_key() {
        let key = SigningKey::generate().unwrap();
        let id = Uuid::now_v7();
        let token = key.sign(id, Role::Operator, now(), 900).unwrap();
        let account = verifier(&[&key]).verify(&token).await.unwrap();
        assert_eq!((account.id, account.role), (id, Role::Operator));
    }

    #[tokio::test]
    async fn a_token_of_another_key_is_refused() {
        let (published, other) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        let mut forged = other.clone();
        forged.kid = published.kid.clone();
        let token = forged
            .sign(Uuid::now_v7(), Role::Admin, now(), 900)
            .unwrap();
        assert!(verifier(&[&published]).verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn a_remembered_token_still_expires() {
        let key = SigningKey::generate().unwrap();
        let verifier = verifier(&[&key]);
        let leeway = agora_platform::auth::LEEWAY_SECS as i64;
        // Valid for one more second, counting the leeway.
        let token = key
            .sign(Uuid::now_v7(), Role::Customer, now() - 60, 60 - leeway + 1)
            .unwrap();
        assert!(verifier.verify(&token).await.is_ok());
        assert!(verifier.verify(&token).await.is_ok(), "remembered");
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        assert!(
            verifier.verify(&token).await.is_err(),
            "expired, remembered or not"
        );
    }

    #[test]
    fn keys_are_named_by_their_thumbprint() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(key.kid, thumbprint(&key.public_key));
        assert_eq!(key.kid.len(), 43, "a base64url SHA-256");
        assert_ne!(key.kid, SigningKey::generate().unwrap().kid);
    }

    #[test]
    fn refresh_tokens_are_random_and_kept_only_as_a_hash() {
        let (token, hash) = refresh_token().unwrap();
        assert_eq!(token_hash(&token), hash);
        assert_ne!(token, hash);
        assert_ne!(refresh_token().unwrap().0, token);
    }
}
