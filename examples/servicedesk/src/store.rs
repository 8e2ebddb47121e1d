//! SQLite storage. One connection behind a mutex; every call runs on tokio's blocking pool
//! ([`Db::run`]), so a slow disk never stalls the async workers that carry WebSocket traffic.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::model::{Counts, NewRequest, Notification, Request, Status};

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such request.
    #[error("request {0} does not exist")]
    NotFound(i64),
    /// The request's state does not allow the change.
    #[error("{0}")]
    Conflict(String),
    /// SQLite failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The blocking task running the call panicked.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer    TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    category    TEXT    NOT NULL,
    priority    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    assignee    TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_customer ON requests (customer);
CREATE INDEX IF NOT EXISTS requests_assignee ON requests (assignee);
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user        TEXT    NOT NULL,
    request_id  INTEGER NOT NULL REFERENCES requests (id),
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    read        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user, read);
";

const COLUMNS: &str = "id, customer, title, description, category, priority, status, assignee, \
                       version, created_at, updated_at";

/// The synchronous store. Use it through [`Db`].
pub struct Store {
    conn: Connection,
}

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<Request> {
    let status: String = r.get(6)?;
    Ok(Request {
        id: r.get(0)?,
        customer: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        category: r.get(4)?,
        priority: r.get(5)?,
        status: Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown status {status:?}").into(),
            )
        })?,
        assignee: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        request_id: r.get(1)?,
        text: r.get(2)?,
        created_at: r.get(3)?,
        read: r.get(4)?,
    })
}

impl Store {
    /// Opens (creating when needed) the database at `path`; `:memory:` for a throwaway one.
    ///
    /// # Errors
    /// SQLite cannot open or migrate the file.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        if path != ":memory:" {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// One request.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn get(&self, id: i64) -> Result<Option<Request>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
                [id],
                request_from_row,
            )
            .optional()?)
    }

    fn must_get(&self, id: i64) -> Result<Request, StoreError> {
        self.get(id)?.ok_or(StoreError::NotFound(id))
    }

    /// Requests, newest first: every one, or a customer's, or an employee's.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn list(&self, filter: ListFilter<'_>) -> Result<Vec<Request>, StoreError> {
        let (clause, args): (&str, Vec<&str>) = match filter {
            ListFilter::All => ("", vec![]),
            ListFilter::Customer(c) => ("WHERE customer = ?1", vec![c]),
            ListFilter::Assignee(a) => ("WHERE assignee = ?1", vec![a]),
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM requests {clause} ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), request_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a validated new request (status in review).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn insert(
        &self,
        customer: &str,
        new: &NewRequest,
        now: i64,
    ) -> Result<Request, StoreError> {
        self.conn.execute(
            "INSERT INTO requests (customer, title, description, category, priority, status, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                customer,
                new.title,
                new.description,
                new.category,
                new.priority,
                Status::InReview.as_str(),
                now
            ],
        )?;
        self.must_get(self.conn.last_insert_rowid())
    }

    /// Moves a request one step forward.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] for a move the workflow does not allow.
    pub fn set_status(&mut self, id: i64, to: Status, now: i64) -> Result<Request, StoreError> {
        let tx = self.conn.transaction()?;
        let current: Option<String> = tx
            .query_row("SELECT status FROM requests WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let from = current
            .as_deref()
            .and_then(Status::parse)
            .ok_or(StoreError::NotFound(id))?;
        if !from.can_move_to(to) {
            return Err(StoreError::Conflict(format!(
                "request {id} is {}; it cannot move to {}",
                from.label(),
                to.label()
            )));
        }
        tx.execute(
            "UPDATE requests SET status = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
            params![id, to.as_str(), now],
        )?;
        tx.commit()?;
        self.must_get(id)
    }

    /// Assigns a request to `assignee`; returns it and the previous assignee.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] when the request is completed.
    pub fn assign(
        &mut self,
        id: i64,
        assignee: &str,
        now: i64,
    ) -> Result<(Request, Option<String>), StoreError> {
        let tx = self.conn.transaction()?;
        let current = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
                [id],
                request_from_row,
            )
            .optional()?
            .ok_or(StoreError::NotFound(id))?;
        if !current.status.is_open() {
            return Err(StoreError::Conflict(format!(
                "request {id} is completed; it cannot be reassigned"
            )));
        }
        tx.execute(
            "UPDATE requests SET assignee = ?2, version = version + 1, updated_at = ?3 \
             WHERE id = ?1",
            params![id, assignee, now],
        )?;
        tx.commit()?;
        Ok((self.must_get(id)?, current.assignee))
    }

    /// The dashboard numbers.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let mut c = Counts::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, COUNT(*), SUM(assignee IS NULL), SUM(version) FROM requests \
             GROUP BY status",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(0)?;
            let (n, unassigned): (i64, i64) = (r.get(1)?, r.get(2)?);
            c.rev += r.get::<_, i64>(3)?;
            match Status::parse(&status) {
                Some(Status::InReview) => c.in_review = n,
                Some(Status::InProgress) => c.in_progress = n,
                Some(Status::Completed) => c.completed = n,
                None => continue,
            }
            if status != Status::Completed.as_str() {
                c.open += n;
                c.unassigned += unassigned;
            }
        }
        Ok(c)
    }

    /// Adds a notification for `user`; returns it and the user's unread count.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn notify(
        &self,
        user: &str,
        request_id: i64,
        text: &str,
        now: i64,
    ) -> Result<(Notification, i64), StoreError> {
        self.conn.execute(
            "INSERT INTO notifications (user, request_id, text, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user, request_id, text, now],
        )?;
        let n = Notification {
            id: self.conn.last_insert_rowid(),
            request_id,
            text: text.to_owned(),
            created_at: now,
            read: false,
        };
        Ok((n, self.unread(user)?))
    }

    /// The user's latest notifications, newest first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn notifications(&self, user: &str, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, request_id, text, created_at, read FROM notifications WHERE user = ?1 \
             ORDER BY id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![user, limit], notification_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many notifications the user has not seen.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn unread(&self, user: &str) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM notifications WHERE user = ?1 AND read = 0",
            [user],
            |r| r.get(0),
        )?)
    }

    /// Marks every notification of the user as read.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn mark_read(&self, user: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE notifications SET read = 1 WHERE user = ?1 AND read = 0",
            [user],
        )?;
        Ok(())
    }

    /// Whether no request was ever stored.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
        Ok(n == 0)
    }
}

/// Which requests [`Store::list`] returns.
#[derive(Clone, Copy, Debug)]
pub enum ListFilter<'a> {
    /// Every request (admins).
    All,
    /// A customer's own.
    Customer(&'a str),
    /// Those assigned to an employee.
    Assignee(&'a str),
}

/// The store shared by handlers.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Mutex<Store>>,
}

impl Db {
    /// Opens the database.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open(path: &str) -> Result<Self, StoreError> {
        Ok(Self {
            inner: Arc::new(Mutex::new(Store::open(path)?)),
        })
    }

    /// Runs `f` with the store on the blocking pool.
    ///
    /// # Errors
    /// What `f` returns, or [`StoreError::Task`] when it panicked (the mutex is not left
    /// poisoned: the next call proceeds).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut store)
        })
        .await?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str) -> NewRequest {
        NewRequest {
            title: title.into(),
            description: String::new(),
            category: "it".into(),
            priority: "normal".into(),
        }
    }

    #[test]
    fn workflow_and_counts() {
        let mut s = Store::open(":memory:").unwrap();
        assert!(s.is_empty().unwrap());
        let a = s.insert("alice", &new("Laptop"), 1).unwrap();
        let b = s.insert("dave", &new("Desk"), 2).unwrap();
        assert_eq!((a.status, a.version), (Status::InReview, 1));
        assert_eq!(s.counts().unwrap().open, 2);
        assert_eq!(s.counts().unwrap().unassigned, 2);
        let (a2, prev) = s.assign(a.id, "bob", 3).unwrap();
        assert_eq!(
            (a2.assignee.as_deref(), prev, a2.version),
            (Some("bob"), None, 2)
        );
        assert!(matches!(
            s.set_status(a.id, Status::Completed, 4),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.set_status(999, Status::InProgress, 4),
            Err(StoreError::NotFound(999))
        ));
        s.set_status(a.id, Status::InProgress, 5).unwrap();
        let done = s.set_status(a.id, Status::Completed, 6).unwrap();
        assert_eq!((done.version, done.updated_at), (4, 6));
        assert!(matches!(
            s.assign(a.id, "carol", 7),
            Err(StoreError::Conflict(_))
        ));
        let c = s.counts().unwrap();
        assert_eq!(
            (c.open, c.in_review, c.completed, c.unassigned),
            (1, 1, 1, 1)
        );
        assert_eq!(s.list(ListFilter::Customer("alice")).unwrap().len(), 1);
        assert_eq!(s.list(ListFilter::Assignee("bob")).unwrap().len(), 1);
        let all = s.list(ListFilter::All).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![b.id, a.id]
        );
    }

    #[test]
    fn notifications_count_unread() {
        let s = Store::open(":memory:").unwrap();
        let r = s.insert("alice", &new("Laptop"), 1).unwrap();
        assert_eq!(s.notify("bob", r.id, "one", 1).unwrap().1, 1);
        assert_eq!(s.notify("bob", r.id, "two", 2).unwrap().1, 2);
        assert_eq!(s.unread("carol").unwrap(), 0);
        let list = s.notifications("bob", 10).unwrap();
        assert_eq!(list[0].text, "two");
        s.mark_read("bob").unwrap();
        assert_eq!(s.unread("bob").unwrap(), 0);
    }
}
