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

/// Messages stored by one INSERT statement (3 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT INTO messages (at, name, text) VALUES (?,?,?), ...` for `n` rows.
fn insert_rows(n: usize) -> String {
    let mut sql = String::from("INSERT INTO messages (at, name, text) VALUES ");
    for i in 0..n {
        sql.push_str(if i == 0 { "(?,?,?)" } else { ",(?,?,?)" });
    }
    sql
}

fn bind_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    at: i64,
    rows: &[NewMessage],
) -> rusqlite::Result<()> {
    for (i, m) in rows.iter().enumerate() {
        stmt.raw_bind_parameter(3 * i + 1, at)?;
        stmt.raw_bind_parameter(3 * i + 2, &m.name)?;
        stmt.raw_bind_parameter(3 * i + 3, &m.text)?;
    }
    Ok(())
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
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        {
            // Rows go in ROWS_PER_INSERT at a time: one statement step per row costs more
            // than the row itself.
            let mut many = tx.prepare_cached(&insert_rows(ROWS_PER_INSERT))?;
            let mut chunks = messages.chunks_exact(ROWS_PER_INSERT);
            for chunk in &mut chunks {
                bind_rows(&mut many, at, chunk)?;
                many.raw_execute()?;
            }
            // The rest one by one, so only two statements ever sit in the cache.
            let mut one = tx.prepare_cached(&insert_rows(1))?;
            for row in chunks.remainder() {
                bind_rows(&mut one, at, std::slice::from_ref(row))?;
                one.raw_execute()?;
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

    #[test]
    fn a_large_batch_is_stored_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        // Two full multi-row statements and a remainder, then a single row.
        let n = 2 * ROWS_PER_INSERT + 5;
        let batch: Vec<NewMessage> = (0..n)
            .map(|i| NewMessage {
                name: format!("u{}", i % 7),
                text: format!("line {i}"),
            })
            .collect();
        s.append(&batch).unwrap();
        s.append(&batch[..1]).unwrap();
        let all = s.recent(1000).unwrap();
        assert_eq!(all.len(), n + 1);
        for (i, m) in all[..n].iter().enumerate() {
            assert_eq!(
                (m.name.as_str(), m.text.as_str()),
                (batch[i].name.as_str(), batch[i].text.as_str())
            );
        }
        assert_eq!(all[n].text, "line 0");
    }
}
