//! Authentication: argon2id password hashes (with a bound on hashes running at once), session
//! tokens (random, stored only as a SHA-256 hash), and the failed-login throttle per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version};
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
/// burst of logins waits here instead of exhausting memory). Each permit's 19 MiB work area
/// is made once and reused: a fresh one per hash cost more in the kernel (zeroing new pages,
/// unmapping them) than argon2 spent computing.
pub struct Hasher {
    argon: Argon2<'static>,
    params: Params,
    pool: Mutex<Pool>,
    freed: Condvar,
}

/// Work areas not in use, and how many more may still be made.
struct Pool {
    idle: Vec<Vec<Block>>,
    unmade: usize,
}

impl Hasher {
    /// A hasher allowing `permits` hashes at once (about the number of cores).
    pub fn new(permits: usize) -> Self {
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
            .expect("valid argon2 parameters");
        Hasher {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            params,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                unmade: permits.max(1),
            }),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` with a work area of this hasher's size, waiting for a permit.
    fn with_memory<T>(&self, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let lock = || self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut pool = lock();
        let reused = loop {
            if let Some(mem) = pool.idle.pop() {
                break Some(mem);
            }
            if pool.unmade > 0 {
                pool.unmade -= 1;
                break None;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner());
        };
        drop(pool);
        let mut mem = reused.unwrap_or_else(|| vec![Block::new(); self.params.block_count()]);
        let out = f(&mut mem);
        lock().idle.push(mem);
        self.freed.notify_one();
        out
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of a password, salted from
    /// the OS's random source.
    pub fn hash(&self, password: &str) -> String {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the OS random source");
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.with_memory(|mem| {
            self.argon
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, mem)
        })
        .expect("argon2 hashing with valid parameters");
        PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).expect("argon2 parameters as PHC"),
            salt: Some(Salt::new(&salt).expect("a 16-byte salt")),
            hash: Some(Output::new(&out).expect("a 32-byte hash")),
        }
        .to_string()
    }

    /// Whether `password` matches the PHC string; the hashes are compared in constant time.
    /// A string with other argon2id parameters is checked with a work area of its own size.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(stored) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected), Ok(params)) =
            (stored.salt, stored.hash, Params::try_from(&stored))
        else {
            return false;
        };
        if stored.algorithm != ARGON2ID_IDENT || expected.len() > 64 {
            return false;
        }
        let Ok(version) = stored.version.map_or(Ok(Version::V0x13), Version::try_from) else {
            return false;
        };
        let argon = Argon2::new(Algorithm::Argon2id, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        let computed = self.with_memory(|mem| {
            if params.block_count() == mem.len() {
                argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, mem)
            } else {
                let mut own = vec![Block::new(); params.block_count()];
                argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut own)
            }
        });
        computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
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
        let other = h.hash("s3cret");
        assert_ne!(phc, other, "each hash has its own salt");
        assert!(
            h.verify("s3cret", &other),
            "a reused work area gives the same answer"
        );
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_phc_api() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(1);
        let ours = h.hash("pw-1");
        assert!(h.argon.verify_password(b"pw-1", ours.as_str()).is_ok());
        // A hash stored by the crate's own API (as earlier versions of tcpkit did) still verifies.
        let theirs = h.argon.hash_password(b"pw-2").unwrap().to_string();
        assert!(h.verify("pw-2", &theirs));
        assert!(!h.verify("pw-1", &theirs));
        // Other parameters (a smaller memory cost) are checked with a work area of their own.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let small_phc = small.hash_password(b"pw-3").unwrap().to_string();
        assert!(h.verify("pw-3", &small_phc));
        assert!(!h.verify("pw-4", &small_phc));
        // Not argon2id: refused.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, h.params.clone());
        let i_phc = argon2i.hash_password(b"pw-5").unwrap().to_string();
        assert!(!h.verify("pw-5", &i_phc));
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
