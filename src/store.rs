//! Persistent chat state behind a small [`Store`] trait: accounts (argon2 PHC strings only),
//! the IP-to-name identification table, session tokens (stored as hashes), and the public
//! message history. [`SqliteStore`] keeps it in one SQLite file in WAL mode.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Registration of a name that exists (names are unique without regard to case).
    #[error("user '{0}' already exists")]
    UserExists(String),
    /// The database said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name as registered (its case kept).
    pub name: String,
    /// The argon2id PHC string of the password.
    pub phc: String,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Who said it.
    pub name: String,
    /// What was said, already sanitized.
    pub text: String,
}

/// A stored public message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// When, as `YYYY-MM-DD HH:MM:SS` in UTC.
    pub at: String,
    /// Who.
    pub name: String,
    /// What.
    pub text: String,
}

/// What the chat needs from storage. Implemented by [`SqliteStore`]; another backend (for
/// example PostgreSQL, for several tcpkit nodes) implements the same trait.
pub trait Store: Send + Sync {
    /// The account with this name (any case), if any.
    fn find_user(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Creates an account.
    fn create_user(&self, name: &str, phc: &str) -> Result<(), StoreError>;
    /// Replaces an account's password hash.
    fn set_password(&self, name: &str, phc: &str) -> Result<(), StoreError>;
    /// The name last used from this address.
    fn name_for_ip(&self, ip: &str) -> Result<Option<String>, StoreError>;
    /// Remembers the name used from this address.
    fn remember_ip(&self, ip: &str, name: &str) -> Result<(), StoreError>;
    /// Stores a session token's hash for `name`, valid until `expires` (unix seconds).
    fn add_token(&self, hash: &[u8], name: &str, expires: i64) -> Result<(), StoreError>;
    /// The user of an unexpired token hash.
    fn token_user(&self, hash: &[u8], now: i64) -> Result<Option<String>, StoreError>;
    /// Revokes a token; true if it existed.
    fn revoke_token(&self, hash: &[u8]) -> Result<bool, StoreError>;
    /// Appends public messages in one transaction (a group commit), stamped with the time now.
    fn append(&self, messages: &[NewMessage]) -> Result<(), StoreError>;
    /// The last `n` public messages, oldest first.
    fn recent(&self, n: usize) -> Result<Vec<StoredMessage>, StoreError>;
    /// Empties accounts, identifications and tokens; the history stays.
    fn clear_users(&self) -> Result<(), StoreError>;
}

/// The SQLite store: one connection behind a mutex, WAL journal, synchronous=NORMAL (a commit
/// survives a crash of the process).
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    phc TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE IF NOT EXISTS idents (
    ip TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash BLOB PRIMARY KEY,
    name TEXT NOT NULL COLLATE NOCASE,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL
);
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the file cannot be opened or set up.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for SqliteStore {
    fn find_user(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT name, phc FROM users WHERE name = ?1", [name], |r| {
                Ok(Account {
                    name: r.get(0)?,
                    phc: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn create_user(&self, name: &str, phc: &str) -> Result<(), StoreError> {
        match self
            .conn()
            .execute("INSERT INTO users (name, phc) VALUES (?1, ?2)", [name, phc])
        {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::UserExists(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_password(&self, name: &str, phc: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("UPDATE users SET phc = ?2 WHERE name = ?1", [name, phc])?;
        Ok(())
    }

    fn name_for_ip(&self, ip: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT name FROM idents WHERE ip = ?1", [ip], |r| r.get(0))
            .optional()?)
    }

    fn remember_ip(&self, ip: &str, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO idents (ip, name) VALUES (?1, ?2)
             ON CONFLICT(ip) DO UPDATE SET name = excluded.name",
            [ip, name],
        )?;
        Ok(())
    }

    fn add_token(&self, hash: &[u8], name: &str, expires: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute("DELETE FROM tokens WHERE expires < unixepoch()", [])?;
        conn.execute(
            "INSERT INTO tokens (hash, name, expires) VALUES (?1, ?2, ?3)",
            params![hash, name, expires],
        )?;
        Ok(())
    }

    fn token_user(&self, hash: &[u8], now: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT t.name FROM tokens t JOIN users u ON u.name = t.name
                 WHERE t.hash = ?1 AND t.expires > ?2",
                params![hash, now],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn revoke_token(&self, hash: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM tokens WHERE hash = ?1", [hash])?
            > 0)
    }

    fn append(&self, messages: &[NewMessage]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO messages (at, name, text) VALUES (unixepoch(), ?1, ?2)",
            )?;
            for m in messages {
                stmt.execute([&m.name, &m.text])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn recent(&self, n: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT strftime('%Y-%m-%d %H:%M:%S', at, 'unixepoch'), name, text FROM
               (SELECT id, at, name, text FROM messages ORDER BY id DESC LIMIT ?1)
             ORDER BY id",
        )?;
        let rows = stmt.query_map([n as i64], |r| {
            Ok(StoredMessage {
                at: r.get(0)?,
                name: r.get(1)?,
                text: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn clear_users(&self) -> Result<(), StoreError> {
        self.conn().execute_batch(
            "BEGIN; DELETE FROM tokens; DELETE FROM idents; DELETE FROM users; COMMIT;",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_tokens_history_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        s.create_user("Alice", "phc1").unwrap();
        assert!(matches!(
            s.create_user("alice", "x"),
            Err(StoreError::UserExists(_))
        ));
        assert_eq!(s.find_user("ALICE").unwrap().unwrap().name, "Alice");
        s.remember_ip("127.0.0.1", "Alice").unwrap();
        assert_eq!(
            s.name_for_ip("127.0.0.1").unwrap().as_deref(),
            Some("Alice")
        );
        s.add_token(b"h1", "Alice", i64::MAX).unwrap();
        assert_eq!(s.token_user(b"h1", 0).unwrap().as_deref(), Some("Alice"));
        assert!(s.revoke_token(b"h1").unwrap());
        assert_eq!(s.token_user(b"h1", 0).unwrap(), None);
        s.append(&[
            NewMessage {
                name: "Alice".into(),
                text: "one".into(),
            },
            NewMessage {
                name: "Alice".into(),
                text: "two".into(),
            },
        ])
        .unwrap();
        let last = s.recent(1).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].text, "two");
        assert_eq!(last[0].at.len(), 19);
        s.clear_users().unwrap();
        assert!(s.find_user("alice").unwrap().is_none());
        assert_eq!(s.recent(10).unwrap().len(), 2, "history stays");
    }
}
