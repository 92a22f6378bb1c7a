//! Authentication: argon2id password hashes (with a bound on hashes running at once), session
//! tokens (random, stored only as a SHA-256 hash), and the failed-login throttle per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use sha2::{Digest, Sha256};

/// OWASP's argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const ARGON2_PASSES: u32 = 2;
/// Failed logins from one address within [`FAILURE_WINDOW`] that lock the address out.
pub const MAX_FAILURES: usize = 5;
/// The window of the failed-login throttle.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a session token is valid by default.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most addresses the throttle tracks; past it, the oldest entries go first.
const MAX_TRACKED: usize = 100_000;

/// Hashes and checks passwords, at most `permits` at a time (each hash takes ~19 MiB, so a
/// burst of logins waits here instead of exhausting memory).
pub struct Hasher {
    argon: Argon2<'static>,
    permits: Mutex<usize>,
    freed: Condvar,
}

impl Hasher {
    /// A hasher allowing `permits` hashes at once (about the number of cores).
    pub fn new(permits: usize) -> Self {
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
            .expect("valid argon2 parameters");
        Hasher {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Mutex::new(permits.max(1)),
            freed: Condvar::new(),
        }
    }

    fn with_permit<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut p = self.permits.lock().unwrap_or_else(|e| e.into_inner());
        while *p == 0 {
            p = self.freed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        *p -= 1;
        drop(p);
        let out = f();
        *self.permits.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
        out
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of a password, salted from
    /// the OS's random source.
    pub fn hash(&self, password: &str) -> String {
        self.with_permit(|| {
            self.argon
                .hash_password(password.as_bytes())
                .expect("argon2 hashing with valid parameters")
                .to_string()
        })
    }

    /// Whether `password` matches the PHC string (compared in constant time by argon2).
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        self.with_permit(|| self.argon.verify_password(password.as_bytes(), phc).is_ok())
    }
}

/// A fresh session token: 32 bytes from the OS, in hex. Shown once to the client.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source");
    hex::encode(bytes)
}

/// What the store keeps of a token: its SHA-256 (a token is random, so no salt is needed, and
/// a stolen database gives no usable token).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Failed logins per address in a sliding window.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Throttle {
    fn recent(q: &mut VecDeque<Instant>, now: Instant) -> usize {
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            q.pop_front();
        }
        q.len()
    }

    /// True while `ip` has [`MAX_FAILURES`] failures within the window.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match f.get_mut(&ip) {
            Some(q) => Self::recent(q, now) >= MAX_FAILURES,
            None => false,
        }
    }

    /// Records a failure; returns true when this one reached the limit.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if f.len() >= MAX_TRACKED && !f.contains_key(&ip) {
            f.retain(|_, q| Self::recent(q, now) > 0);
            if f.len() >= MAX_TRACKED {
                return false;
            }
        }
        let q = f.entry(ip).or_default();
        q.push_back(now);
        Self::recent(q, now) >= MAX_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_phc_argon2id_and_verify() {
        let h = Hasher::new(2);
        let phc = h.hash("s3cret");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("s3cret", &phc));
        assert!(!h.verify("wrong", &phc));
        assert!(!h.verify("s3cret", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_hex_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn fifth_failure_blocks() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..4 {
            assert!(!t.fail(ip));
        }
        assert!(!t.blocked(ip));
        assert!(t.fail(ip));
        assert!(t.blocked(ip));
        assert!(!t.blocked("192.0.2.8".parse().unwrap()));
    }
}
