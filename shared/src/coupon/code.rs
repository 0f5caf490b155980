//! Coupon codes: unguessable, and deterministic so that issuing is idempotent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret behind coupon codes. Codes are HMACs of (member, grant, slot): the same grant
/// always yields the same code, so issuing is one conditional write and a redelivered
/// message finds the coupon already there; without the key a code cannot be guessed.
#[derive(Clone)]
pub struct CodeKey(Vec<u8>);

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

impl CodeKey {
    pub fn new(secret: &[u8]) -> Result<CodeKey, String> {
        if secret.len() < 32 {
            return Err("COUPON_CODE_SECRET must be at least 32 bytes".into());
        }
        Ok(CodeKey(secret.to_vec()))
    }

    /// The deployment's key, `COUPON_CODE_SECRET` (a Secrets Manager secret, or a local
    /// stand-in: `secrets::load`), read once at init.
    pub async fn from_env() -> Result<CodeKey, String> {
        CodeKey::new(crate::secrets::load("COUPON_CODE_SECRET").await?.expose())
    }

    /// 12 characters of Crockford base32: 60 bits of HMAC-SHA256.
    pub fn code(&self, member_id: &str, grant: &str, slot: u32) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in [member_id.as_bytes(), b"\0", grant.as_bytes(), b"\0", &slot.to_be_bytes()] {
            mac.update(part);
        }
        let bytes = mac.finalize().into_bytes();
        let mut bits = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut out = [0u8; 12];
        for c in out.iter_mut() {
            *c = ALPHABET[(bits >> 59) as usize];
            bits <<= 5;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Whether a string could be a code at all (checked before any lookup).
pub fn looks_like_code(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}
