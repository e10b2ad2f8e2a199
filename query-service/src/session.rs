//! Sessions: an HS256 JWT in the `session` cookie.

use command_api::Role;
use domain::{AccountId, Actor, SessionId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub const COOKIE: &str = "session";

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account.
    pub sub: AccountId,
    /// The session id (revocable).
    pub jti: SessionId,
    /// The account's email.
    pub email: String,
    /// `USER`, maybe `ADMIN` (the gateway decides them again from its configuration).
    #[serde(deserialize_with = "command_api::known_roles")]
    pub roles: Vec<Role>,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
}

impl Claims {
    /// The actor commands are sent on behalf of.
    pub fn actor(&self) -> Actor {
        Actor { id: self.sub, is_admin: self.roles.contains(&Role::Admin) }
    }
}

/// Signs and checks session tokens with one secret; the algorithm is pinned to HS256.
#[derive(Clone)]
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Token lifetime in seconds.
    pub lifetime: i64,
    /// Whether cookies carry `Secure`.
    pub secure: bool,
}

impl Sessions {
    /// Sessions signed with `secret`.
    pub fn new(secret: &str, lifetime: i64, secure: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            lifetime,
            secure,
        }
    }

    /// A signed token for a new session.
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue(
        &self,
        sub: AccountId,
        jti: SessionId,
        email: &str,
        roles: Vec<Role>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims { sub, jti, email: email.to_owned(), roles, iat: now, exp: now + self.lifetime };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks a token's signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }

    /// The `Set-Cookie` value that stores a token.
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}", self.lifetime)
    }

    /// The `Set-Cookie` value that clears the session.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}")
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new("0123456789abcdef0123456789abcdef", 60, true)
    }

    #[test]
    fn a_token_round_trips_and_a_tampered_one_is_refused() {
        let (token, claims) = sessions()
            .issue(AccountId(uuid::Uuid::from_u128(1)), SessionId(uuid::Uuid::from_u128(2)), "a@b.co", vec![Role::User])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sessions().verify(&token), Some(claims));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(sessions().verify(&tampered), None);
        assert_eq!(Sessions::new("another secret another secret 123", 60, true).verify(&token), None);
    }

    #[test]
    fn alg_none_and_expired_tokens_are_refused() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"sub": uuid::Uuid::nil(), "jti": uuid::Uuid::nil(), "email": "a@b.co", "roles": ["ADMIN"], "iat": now, "exp": now + 60});
        let b64 = |v: &serde_json::Value| {
            use std::fmt::Write;
            // URL-safe base64 without padding, written out to avoid another dependency.
            let bytes = v.to_string().into_bytes();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    let _ = out.write_char(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
                }
            }
            out
        };
        let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims));
        assert_eq!(sessions().verify(&none), None);

        let expired = Sessions::new("0123456789abcdef0123456789abcdef", -1, true);
        let (token, _) = expired
            .issue(AccountId(uuid::Uuid::nil()), SessionId(uuid::Uuid::nil()), "a@b.co", vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sessions().verify(&token), None);
    }

    #[test]
    fn the_cookie_has_the_attributes_the_product_requires() {
        let cookie = sessions().cookie("t");
        assert_eq!(cookie, "session=t; HttpOnly; SameSite=Lax; Path=/; Max-Age=60; Secure");
        let insecure = Sessions::new("0123456789abcdef0123456789abcdef", 60, false).cookie("t");
        assert!(!insecure.contains("Secure"));
        assert_eq!(from_cookie_header("a=1; session=xyz; b=2"), Some("xyz"));
    }
}
