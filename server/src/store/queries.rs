//! Reading the records back as the admin API shows them: a `SessionRecord` with its attendance
//! (operations.md), pages of sessions and of the audit trail, and the attendance CSV.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{ms, rfc3339, unix_ms, Store, StoreError};

/// One run of a room, as a clinic bills from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub room: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    /// Distinct members admitted: the billing head count.
    pub member_count: usize,
    pub facilitators: Vec<String>,
    pub attendance: Vec<AttendanceRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttendanceRow {
    pub participant: String,
    pub role: String,
    pub first_joined_at: String,
    pub last_left_at: Option<String>,
    pub minutes_present: f64,
    pub intervals: Vec<Interval>,
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub joined_at: String,
    pub left_at: Option<String>,
    pub left_reason: Option<String>,
}

/// `{at, room, session, actor, action, target}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub at: String,
    pub room: String,
    pub session: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
}

/// One page of a newest-first list, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Filters of a list: a room, a time range (Unix ms, inclusive), a page size and where to
/// continue from (the `next_cursor` of the page before).
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub room: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// A cursor is the last item's time and id: the next page starts strictly before it.
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('_')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Why a query could not be run as asked (a client's mistake, answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct BadCursor;

impl Store {
    /// One session with its attendance; `now` closes the open intervals' minutes.
    pub async fn session(&self, id: &str, now: u64) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, room, started_at, ended_at, end_reason FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(Some(self.record(row, now).await?)),
            None => Ok(None),
        }
    }

    /// Sessions newest first, live ones included.
    pub async fn sessions(
        &self,
        query: &SessionQuery,
        now: u64,
    ) -> Result<Result<Page<SessionRecord>, BadCursor>, StoreError> {
        let rows = match self
            .page(
                "SELECT id, room, started_at, ended_at, end_reason FROM sessions",
                "started_at",
                query,
            )
            .await?
        {
            Ok(rows) => rows,
            Err(bad) => return Ok(Err(bad)),
        };
        let ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut attendance = self.attendance_of(&ids).await?;
        let mut items = Vec::with_capacity(rows.len());
        for (row, id) in rows.into_iter().zip(&ids) {
            let (attendees, intervals) = attendance.remove(id).unwrap_or_default();
            items.push(build_record(row, attendees, intervals, now)?);
        }
        let next_cursor = next_cursor(&items, query.limit, |s: &SessionRecord| {
            (
                super::parse_rfc3339(&s.started_at).unwrap_or(0),
                s.id.clone(),
            )
        });
        Ok(Ok(Page { items, next_cursor }))
    }

    /// The audit trail, newest first.
    pub async fn audit(
        &self,
        query: &SessionQuery,
    ) -> Result<Result<Page<AuditEvent>, BadCursor>, StoreError> {
        let rows = match self
            .page(
                "SELECT id, at, room, session, actor, action, target FROM audit",
                "at",
                query,
            )
            .await?
        {
            Ok(rows) => rows,
            Err(bad) => return Ok(Err(bad)),
        };
        let mut keyed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let at: i64 = row.try_get("at")?;
            keyed.push((
                (unix_ms(at), id),
                AuditEvent {
                    at: rfc3339(unix_ms(at)),
                    room: row.try_get("room")?,
                    session: row.try_get("session")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                },
            ));
        }
        let next_cursor = next_cursor(&keyed, query.limit, |(key, _)| key.clone());
        Ok(Ok(Page {
            items: keyed.into_iter().map(|(_, e)| e).collect(),
            next_cursor,
        }))
    }

    /// One page of `select`'s rows, newest first by `time`, as `query` filters it.
    async fn page(
        &self,
        select: &str,
        time: &str,
        query: &SessionQuery,
    ) -> Result<Result<Vec<AnyRow>, BadCursor>, StoreError> {
        let cursor = match query.cursor.as_deref().map(parse_cursor) {
            Some(None) => return Ok(Err(BadCursor)),
            Some(Some(c)) => Some(c),
            None => None,
        };
        let (sql, binds) = filtered(select, time, query, cursor);
        let mut q = sqlx::query(&sql);
        for bind in binds {
            q = match bind {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q
            .bind(page_size(query.limit))
            .fetch_all(self.pool())
            .await?;
        Ok(Ok(rows))
    }

    async fn record(&self, row: AnyRow, now: u64) -> Result<SessionRecord, StoreError> {
        let id: String = row.try_get("id")?;
        let (attendees, intervals) = self
            .attendance_of(std::slice::from_ref(&id))
            .await?
            .remove(&id)
            .unwrap_or_default();
        build_record(row, attendees, intervals, now)
    }

    /// The attendees and intervals of the given sessions, two queries for the lot, by session.
    async fn attendance_of(&self, ids: &[String]) -> Result<Attendance, StoreError> {
        let mut by_session = Attendance::new();
        if ids.is_empty() {
            return Ok(by_session);
        }
        let placeholders = (1..=ids.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let attendees = format!(
            "SELECT session, participant, role, audio, video FROM attendees \
             WHERE session IN ({placeholders}) ORDER BY session, participant"
        );
        let intervals = format!(
            "SELECT session, participant, joined_at, left_at, left_reason, dropped_at FROM intervals \
             WHERE session IN ({placeholders}) ORDER BY session, participant, joined_at"
        );
        for row in self.rows_of(&attendees, ids).await? {
            let session: String = row.try_get("session")?;
            by_session.entry(session).or_default().0.push(row);
        }
        for row in self.rows_of(&intervals, ids).await? {
            let session: String = row.try_get("session")?;
            by_session.entry(session).or_default().1.push(row);
        }
        Ok(by_session)
    }

    /// The rows of `sql`, whose placeholders are the session `ids` in order.
    async fn rows_of(&self, sql: &str, ids: &[String]) -> Result<Vec<AnyRow>, StoreError> {
        let mut query = sqlx::query(sql);
        for id in ids {
            query = query.bind(id);
        }
        Ok(query.fetch_all(self.pool()).await?)
    }
}

/// Attendee rows and interval rows, by session id.
type Attendance = BTreeMap<String, (Vec<AnyRow>, Vec<AnyRow>)>;

/// A session's record from its row, its attendees and its intervals (ordered by participant,
/// then by when they joined).
fn build_record(
    row: AnyRow,
    attendees: Vec<AnyRow>,
    intervals: Vec<AnyRow>,
    now: u64,
) -> Result<SessionRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let started_at: i64 = row.try_get("started_at")?;
    let ended_at: Option<i64> = row.try_get("ended_at")?;
    let mut by_participant: BTreeMap<String, Vec<AnyRow>> = BTreeMap::new();
    for interval in intervals {
        let participant: String = interval.try_get("participant")?;
        by_participant
            .entry(participant)
            .or_default()
            .push(interval);
    }
    // An open interval of a finished session cannot happen; of a live one it counts to now.
    let until = ended_at.map(unix_ms).unwrap_or(now);
    let mut attendance = Vec::with_capacity(attendees.len());
    let mut facilitators = Vec::new();
    let mut member_count = 0;
    for attendee in attendees {
        let participant: String = attendee.try_get("participant")?;
        let role: String = attendee.try_get("role")?;
        match role.as_str() {
            "member" => member_count += 1,
            "facilitator" => facilitators.push(participant.clone()),
            _ => {}
        }
        let rows = by_participant.remove(&participant).unwrap_or_default();
        let mut present_ms = 0u64;
        let mut intervals = Vec::with_capacity(rows.len());
        let mut first = None;
        let mut last_left = Some(0);
        for interval in rows {
            let joined: i64 = interval.try_get("joined_at")?;
            let left: Option<i64> = interval.try_get("left_at")?;
            let dropped: Option<i64> = interval.try_get("dropped_at")?;
            let end = left.or(dropped).map(unix_ms).unwrap_or(until);
            present_ms += end.saturating_sub(unix_ms(joined));
            first = first.or(Some(joined));
            last_left = match (last_left, left) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            intervals.push(Interval {
                joined_at: rfc3339(unix_ms(joined)),
                left_at: left.map(|l| rfc3339(unix_ms(l))),
                left_reason: interval.try_get("left_reason")?,
            });
        }
        let Some(first) = first else {
            return Err(StoreError::Corrupt(format!(
                "an attendee of session {id} without an interval"
            )));
        };
        attendance.push(AttendanceRow {
            participant,
            role,
            first_joined_at: rfc3339(unix_ms(first)),
            last_left_at: last_left.map(|l| rfc3339(unix_ms(l))),
            // Tenths of a minute: what a claim's minutes need, without false precision.
            minutes_present: (present_ms as f64 / 6_000.0).round() / 10.0,
            intervals,
            audio: attendee.try_get::<i64, _>("audio")? != 0,
            video: attendee.try_get::<i64, _>("video")? != 0,
        });
    }
    Ok(SessionRecord {
        id,
        room: row.try_get("room")?,
        started_at: rfc3339(unix_ms(started_at)),
        ended_at: ended_at.map(|e| rfc3339(unix_ms(e))),
        end_reason: row.try_get("end_reason")?,
        member_count,
        facilitators,
        attendance,
    })
}

enum Bind {
    Text(String),
    Int(i64),
}

/// The page size asked for, within 1..=500 (50 when not given).
fn page_size(limit: usize) -> i64 {
    match limit {
        0 => 50,
        n => n.min(500) as i64,
    }
}

/// A newest-first query with the optional filters; binds in order, the page size last.
fn filtered(
    select: &str,
    time: &str,
    query: &SessionQuery,
    cursor: Option<(i64, String)>,
) -> (String, Vec<Bind>) {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let next = |bind: Bind, binds: &mut Vec<Bind>| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    if let Some(room) = &query.room {
        let p = next(Bind::Text(room.clone()), &mut binds);
        conditions.push(format!("room = {p}"));
    }
    if let Some(from) = query.from {
        let p = next(Bind::Int(ms(from)), &mut binds);
        conditions.push(format!("{time} >= {p}"));
    }
    if let Some(to) = query.to {
        let p = next(Bind::Int(ms(to)), &mut binds);
        conditions.push(format!("{time} <= {p}"));
    }
    if let Some((at, id)) = cursor {
        let a = next(Bind::Int(at), &mut binds);
        let b = next(Bind::Text(id), &mut binds);
        // (time, id) < (at, id), spelled out: both databases read it the same way.
        conditions.push(format!("({time} < {a} OR ({time} = {a} AND id < {b}))"));
    }
    let mut sql = select.to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let limit = format!("${}", binds.len() + 1);
    sql.push_str(&format!(" ORDER BY {time} DESC, id DESC LIMIT {limit}"));
    (sql, binds)
}

/// The cursor after a full page; none after a short one.
fn next_cursor<T>(items: &[T], limit: usize, key: impl Fn(&T) -> (u64, String)) -> Option<String> {
    if items.len() < page_size(limit) as usize {
        return None;
    }
    items.last().map(|last| {
        let (at, id) = key(last);
        format!("{at}_{id}")
    })
}

/// The attendance CSV: one row per participant, the same figures as the JSON record.
pub fn attendance_csv(record: &SessionRecord) -> String {
    let mut out = String::from(
        "participant,role,first_joined_at,last_left_at,minutes_present,intervals,audio,video\r\n",
    );
    for row in &record.attendance {
        let fields = [
            csv_field(&row.participant),
            csv_field(&row.role),
            row.first_joined_at.clone(),
            row.last_left_at.clone().unwrap_or_default(),
            format!("{:.1}", row.minutes_present),
            row.intervals.len().to_string(),
            row.audio.to_string(),
            row.video.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// RFC 4180 quoting, and a leading `'` for text a spreadsheet would run as a formula (a `sub`
/// is the clinic's own string, but a CSV opened in a spreadsheet must never execute).
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_the_cursor_become_numbered_parameters_in_order() {
        let query = SessionQuery {
            room: Some("tuesday".into()),
            from: Some(10),
            to: None,
            limit: 2,
            cursor: None,
        };
        let (sql, binds) = filtered(
            "SELECT id FROM sessions",
            "started_at",
            &query,
            Some((5, "b".into())),
        );
        assert_eq!(
            sql,
            "SELECT id FROM sessions WHERE room = $1 AND started_at >= $2 AND \
             (started_at < $3 OR (started_at = $3 AND id < $4)) ORDER BY started_at DESC, id DESC LIMIT $5"
        );
        assert_eq!(binds.len(), 4);
    }

    #[test]
    fn a_csv_field_is_quoted_when_needed_and_never_read_as_a_formula() {
        assert_eq!(csv_field("patient-4411"), "patient-4411");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }

    #[test]
    fn a_cursor_is_the_last_items_time_and_id() {
        assert_eq!(parse_cursor("1700_abc"), Some((1700, "abc".into())));
        assert_eq!(parse_cursor("x_abc"), None);
        assert_eq!(parse_cursor("nounderscore"), None);
    }
}
