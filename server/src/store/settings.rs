//! Per-room settings set through the admin API, kept across restarts.

use sqlx::Row;

use super::{ms, Store, StoreError};
use crate::config::RoomSettings;

impl Store {
    /// Every room's stored settings, loaded at start-up.
    pub async fn room_settings(&self) -> Result<Vec<(String, RoomSettings)>, StoreError> {
        let rows = sqlx::query(
            "SELECT room, max_participants, waiting_room, turn_limit_seconds, anonymity_threshold \
             FROM room_settings",
        )
        .fetch_all(self.pool())
        .await?;
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let number = |column: &str| -> Result<Option<i64>, StoreError> {
                Ok(row.try_get::<Option<i64>, _>(column)?)
            };
            let corrupt = |column: &str| StoreError::Corrupt(format!("room_settings.{column}"));
            let settings = RoomSettings {
                max_participants: number("max_participants")?
                    .map(|n| usize::try_from(n).map_err(|_| corrupt("max_participants")))
                    .transpose()?,
                waiting_room: number("waiting_room")?.map(|n| n != 0),
                turn_limit_seconds: number("turn_limit_seconds")?
                    .map(|n| u32::try_from(n).map_err(|_| corrupt("turn_limit_seconds")))
                    .transpose()?,
                anonymity_threshold: number("anonymity_threshold")?
                    .map(|n| u32::try_from(n).map_err(|_| corrupt("anonymity_threshold")))
                    .transpose()?,
            };
            all.push((row.try_get("room")?, settings));
        }
        Ok(all)
    }

    /// Replaces a room's settings.
    pub async fn put_room_settings(
        &self,
        room: &str,
        settings: &RoomSettings,
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO room_settings \
             (room, max_participants, waiting_room, turn_limit_seconds, anonymity_threshold, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (room) DO UPDATE SET max_participants = excluded.max_participants, \
             waiting_room = excluded.waiting_room, turn_limit_seconds = excluded.turn_limit_seconds, \
             anonymity_threshold = excluded.anonymity_threshold, updated_at = excluded.updated_at",
        )
        .bind(room)
        .bind(settings.max_participants.map(|n| n as i64))
        .bind(settings.waiting_room.map(i64::from))
        .bind(settings.turn_limit_seconds.map(i64::from))
        .bind(settings.anonymity_threshold.map(i64::from))
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
