//! What the recorder writes: one [`Write`] per thing that happened, applied in batches, one
//! transaction each; and the repairs at start-up and the retention sweep.

use sqlx::Row;

use super::{ms, unix_ms, Store, StoreError};

/// One change to the records. Ids are the token's `sub` and the room's session id; nothing
/// here can hold a name, a note or anything said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    SessionStarted {
        session: String,
        room: String,
        at: u64,
    },
    SessionEnded {
        session: String,
        at: u64,
        reason: &'static str,
    },
    /// An interval opens.
    Admitted {
        session: String,
        participant: String,
        role: &'static str,
        at: u64,
    },
    /// The open interval closes (at the drop, if the person was reconnecting).
    Left {
        session: String,
        participant: String,
        at: u64,
        reason: &'static str,
    },
    Dropped {
        session: String,
        participant: String,
        at: u64,
    },
    Back {
        session: String,
        participant: String,
    },
    Published {
        session: String,
        participant: String,
        video: bool,
    },
    Audit {
        id: String,
        at: u64,
        room: String,
        session: Option<String>,
        actor: String,
        action: &'static str,
        target: Option<String>,
    },
    /// A webhook event for one receiver, delivered in `seq` order within its room.
    Webhook {
        id: String,
        url: String,
        room: String,
        seq: u64,
        body: String,
        at: u64,
    },
    /// Running sessions are still running at `at` (see `sessions.last_seen_at`).
    Seen { session: String, at: u64 },
}

/// A session the last run left open, closed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub session: String,
    pub room: String,
    pub ended_at: u64,
}

impl Store {
    /// Applies a batch in one transaction: all of it or, on error, none.
    pub async fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for write in batch {
            apply_one(&mut tx, write).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes what a crash left open: each open interval ends where its person dropped or the
    /// server was last seen up, and its session ends `server_shutdown`. With `unseen_since`
    /// (Unix ms), only sessions no node has marked as running since then: in a cluster the
    /// others' sessions are running, and marked every `SEEN_EVERY`.
    pub async fn recover(&self, unseen_since: Option<u64>) -> Result<Vec<Recovered>, StoreError> {
        let open = sqlx::query(
            "SELECT id, room, started_at, last_seen_at FROM sessions \
             WHERE ended_at IS NULL AND last_seen_at < $1",
        )
        .bind(unseen_since.map_or(i64::MAX, ms))
        .fetch_all(self.pool())
        .await?;
        let mut recovered = Vec::new();
        let mut tx = self.pool().begin().await?;
        for row in open {
            let session: String = row.try_get("id")?;
            let room: String = row.try_get("room")?;
            let started_at: i64 = row.try_get("started_at")?;
            let last_seen: i64 = row.try_get::<i64, _>("last_seen_at")?.max(started_at);
            let intervals = sqlx::query(
                "SELECT participant, joined_at, dropped_at FROM intervals \
                 WHERE session = $1 AND left_at IS NULL",
            )
            .bind(&session)
            .fetch_all(&mut *tx)
            .await?;
            for interval in intervals {
                let participant: String = interval.try_get("participant")?;
                let joined_at: i64 = interval.try_get("joined_at")?;
                let dropped_at: Option<i64> = interval.try_get("dropped_at")?;
                let left_at = dropped_at.unwrap_or(last_seen).max(joined_at);
                sqlx::query(
                    "UPDATE intervals SET left_at = $1, left_reason = 'ended' \
                     WHERE session = $2 AND participant = $3 AND joined_at = $4",
                )
                .bind(left_at)
                .bind(&session)
                .bind(&participant)
                .bind(joined_at)
                .execute(&mut *tx)
                .await?;
            }
            // Another node may be closing the same session: only one of us tells about it.
            let closed = sqlx::query(
                "UPDATE sessions SET ended_at = $1, end_reason = 'server_shutdown' \
                 WHERE id = $2 AND ended_at IS NULL",
            )
            .bind(last_seen)
            .bind(&session)
            .execute(&mut *tx)
            .await?;
            if closed.rows_affected() == 0 {
                continue;
            }
            recovered.push(Recovered {
                session,
                room,
                ended_at: unix_ms(last_seen),
            });
        }
        tx.commit().await?;
        Ok(recovered)
    }

    /// Deletes sessions that ended before `cutoff` (with their attendance) and audit events
    /// older than it. Returns how many sessions went.
    pub async fn delete_before(&self, cutoff: u64) -> Result<u64, StoreError> {
        let cutoff = ms(cutoff);
        let mut tx = self.pool().begin().await?;
        let old = "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at < $1";
        for table in ["intervals", "attendees"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE session IN ({old})"))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sessions)
    }
}

async fn apply_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    write: &Write,
) -> Result<(), StoreError> {
    let conn = &mut **tx;
    match write {
        Write::SessionStarted { session, room, at } => {
            sqlx::query(
                "INSERT INTO sessions (id, room, started_at, last_seen_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(session)
            .bind(room)
            .bind(ms(*at))
            .execute(conn)
            .await?;
        }
        Write::SessionEnded {
            session,
            at,
            reason,
        } => {
            sqlx::query(
                "UPDATE sessions SET ended_at = $1, end_reason = $2, last_seen_at = $1 \
                 WHERE id = $3 AND ended_at IS NULL",
            )
            .bind(ms(*at))
            .bind(*reason)
            .bind(session)
            .execute(&mut *conn)
            .await?;
            // Everyone was told `Left` before the end; this only closes what a lost event
            // would have left open.
            sqlx::query(
                "UPDATE intervals SET left_at = COALESCE(dropped_at, $1), left_reason = 'ended' \
                 WHERE session = $2 AND left_at IS NULL",
            )
            .bind(ms(*at))
            .bind(session)
            .execute(conn)
            .await?;
        }
        Write::Admitted {
            session,
            participant,
            role,
            at,
        } => {
            sqlx::query(
                "INSERT INTO attendees (session, participant, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (session, participant) DO UPDATE SET role = excluded.role",
            )
            .bind(session)
            .bind(participant)
            .bind(*role)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO intervals (session, participant, joined_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (session, participant, joined_at) DO NOTHING",
            )
            .bind(session)
            .bind(participant)
            .bind(ms(*at))
            .execute(conn)
            .await?;
        }
        Write::Left {
            session,
            participant,
            at,
            reason,
        } => {
            sqlx::query(
                "UPDATE intervals SET left_at = COALESCE(dropped_at, $1), left_reason = $2 \
                 WHERE session = $3 AND participant = $4 AND left_at IS NULL",
            )
            .bind(ms(*at))
            .bind(*reason)
            .bind(session)
            .bind(participant)
            .execute(conn)
            .await?;
        }
        Write::Dropped {
            session,
            participant,
            at,
        } => {
            sqlx::query(
                "UPDATE intervals SET dropped_at = $1 \
                 WHERE session = $2 AND participant = $3 AND left_at IS NULL AND dropped_at IS NULL",
            )
            .bind(ms(*at))
            .bind(session)
            .bind(participant)
            .execute(conn)
            .await?;
        }
        Write::Back {
            session,
            participant,
        } => {
            sqlx::query(
                "UPDATE intervals SET dropped_at = NULL \
                 WHERE session = $1 AND participant = $2 AND left_at IS NULL",
            )
            .bind(session)
            .bind(participant)
            .execute(conn)
            .await?;
        }
        Write::Published {
            session,
            participant,
            video,
        } => {
            let column = if *video { "video" } else { "audio" };
            sqlx::query(&format!(
                "UPDATE attendees SET {column} = 1 WHERE session = $1 AND participant = $2"
            ))
            .bind(session)
            .bind(participant)
            .execute(conn)
            .await?;
        }
        Write::Audit {
            id,
            at,
            room,
            session,
            actor,
            action,
            target,
        } => {
            sqlx::query(
                "INSERT INTO audit (id, at, room, session, actor, action, target) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(ms(*at))
            .bind(room)
            .bind(session.as_deref())
            .bind(actor)
            .bind(*action)
            .bind(target.as_deref())
            .execute(conn)
            .await?;
        }
        Write::Webhook {
            id,
            url,
            room,
            seq,
            body,
            at,
        } => {
            sqlx::query(
                "INSERT INTO webhook_outbox (id, url, room, seq, body, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id, url) DO NOTHING",
            )
            .bind(id)
            .bind(url)
            .bind(room)
            .bind(ms(*seq))
            .bind(body)
            .bind(ms(*at))
            .execute(conn)
            .await?;
        }
        Write::Seen { session, at } => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL")
                .bind(ms(*at))
                .bind(session)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rfc3339;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    async fn temp_store() -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "circle-store-test-{}-{}.db",
            std::process::id(),
            rand::random::<u64>()
        ));
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (store, path)
    }

    #[tokio::test]
    async fn a_reconnect_does_not_split_an_interval_and_a_timeout_ends_it_at_the_drop() {
        let (store, path) = temp_store().await;
        let min = 60_000;
        store
            .apply(&[
                Write::SessionStarted {
                    session: s("S"),
                    room: s("r"),
                    at: 0,
                },
                Write::Admitted {
                    session: s("S"),
                    participant: s("f"),
                    role: "facilitator",
                    at: 0,
                },
                Write::Admitted {
                    session: s("S"),
                    participant: s("m"),
                    role: "member",
                    at: min,
                },
                Write::Published {
                    session: s("S"),
                    participant: s("m"),
                    video: false,
                },
                Write::Dropped {
                    session: s("S"),
                    participant: s("m"),
                    at: 5 * min,
                },
                Write::Back {
                    session: s("S"),
                    participant: s("m"),
                },
                Write::Dropped {
                    session: s("S"),
                    participant: s("m"),
                    at: 10 * min,
                },
                Write::Left {
                    session: s("S"),
                    participant: s("m"),
                    at: 10 * min + 20_000,
                    reason: "timeout",
                },
                Write::Admitted {
                    session: s("S"),
                    participant: s("m"),
                    role: "member",
                    at: 12 * min,
                },
                Write::Left {
                    session: s("S"),
                    participant: s("m"),
                    at: 20 * min,
                    reason: "left",
                },
                Write::Left {
                    session: s("S"),
                    participant: s("f"),
                    at: 30 * min,
                    reason: "ended",
                },
                Write::SessionEnded {
                    session: s("S"),
                    at: 30 * min,
                    reason: "ended_by_facilitator",
                },
            ])
            .await
            .unwrap();
        let record = store.session("S", 99 * min).await.unwrap().unwrap();
        assert_eq!(record.member_count, 1);
        assert_eq!(record.facilitators, vec![s("f")]);
        assert_eq!(record.end_reason.as_deref(), Some("ended_by_facilitator"));
        let m = record
            .attendance
            .iter()
            .find(|a| a.participant == "m")
            .unwrap();
        assert_eq!(m.intervals.len(), 2, "{m:?}");
        assert_eq!(m.intervals[0].left_reason.as_deref(), Some("timeout"));
        assert_eq!(m.intervals[0].left_at, Some(rfc3339(10 * min)));
        assert_eq!(m.minutes_present, 9.0 + 8.0);
        assert!(m.audio && !m.video);
        let f = record
            .attendance
            .iter()
            .find(|a| a.participant == "f")
            .unwrap();
        assert_eq!(f.minutes_present, 30.0);
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn after_a_crash_open_intervals_close_where_the_server_was_last_seen() {
        let (store, path) = temp_store().await;
        store
            .apply(&[
                Write::SessionStarted {
                    session: s("S"),
                    room: s("r"),
                    at: 1_000,
                },
                Write::Admitted {
                    session: s("S"),
                    participant: s("a"),
                    role: "member",
                    at: 1_000,
                },
                Write::Admitted {
                    session: s("S"),
                    participant: s("b"),
                    role: "member",
                    at: 2_000,
                },
                Write::Dropped {
                    session: s("S"),
                    participant: s("b"),
                    at: 3_000,
                },
                Write::Seen {
                    session: s("S"),
                    at: 9_000,
                },
            ])
            .await
            .unwrap();
        let recovered = store.recover(None).await.unwrap();
        assert_eq!(
            recovered,
            vec![Recovered {
                session: s("S"),
                room: s("r"),
                ended_at: 9_000
            }]
        );
        let record = store.session("S", 50_000).await.unwrap().unwrap();
        assert_eq!(record.end_reason.as_deref(), Some("server_shutdown"));
        assert_eq!(record.ended_at, Some(rfc3339(9_000)));
        let left = |who: &str| {
            let row = record
                .attendance
                .iter()
                .find(|a| a.participant == who)
                .unwrap();
            (
                row.last_left_at.clone(),
                row.intervals[0].left_reason.clone(),
            )
        };
        assert_eq!(left("a"), (Some(rfc3339(9_000)), Some(s("ended"))));
        assert_eq!(left("b"), (Some(rfc3339(3_000)), Some(s("ended"))));
        assert!(
            store.recover(None).await.unwrap().is_empty(),
            "a second start finds nothing open"
        );
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
