-- Circle's records (operations.md): who attended which session and when, the audit trail of
-- moderation, per-room settings, and webhook events waiting for delivery. Never names, notes,
-- reactions, check-ins, floor history or media.
--
-- One schema for SQLite and PostgreSQL: times are Unix milliseconds (BIGINT), flags are 0 or 1,
-- ids are text.

-- One run of a room: from the first admission to the room's close.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    -- Refreshed while the session runs, so that after a crash its open intervals close at the
    -- last moment the server was known to be up, not at the restart.
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_start ON sessions (started_at, id);
CREATE INDEX sessions_by_room ON sessions (room, started_at);

-- Everyone admitted to a session, by the token's `sub`.
CREATE TABLE attendees (
    session TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    participant TEXT NOT NULL,
    role TEXT NOT NULL,
    audio BIGINT NOT NULL DEFAULT 0,
    video BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (session, participant)
);

-- Each stretch of presence: from admission to leaving. A reconnect within the resume grace does
-- not split it; `dropped_at` holds when the connection dropped until the person is back, and is
-- where the interval ends if they never are.
CREATE TABLE intervals (
    session TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    participant TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    left_reason TEXT,
    dropped_at BIGINT,
    PRIMARY KEY (session, participant, joined_at)
);

-- Moderation: who (a facilitator's `sub`, or "api") did what to whom.
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    room TEXT NOT NULL,
    session TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT
);
CREATE INDEX audit_by_time ON audit (at, id);

-- Settings set through the admin API; NULL keeps the server's default.
CREATE TABLE room_settings (
    room TEXT PRIMARY KEY,
    max_participants BIGINT,
    waiting_room BIGINT,
    turn_limit_seconds BIGINT,
    anonymity_threshold BIGINT,
    updated_at BIGINT NOT NULL
);

-- Webhook events not yet delivered to one receiver; a row goes once delivered or given up on.
CREATE TABLE webhook_outbox (
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    room TEXT NOT NULL,
    -- Delivery order within a room.
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    PRIMARY KEY (id, url)
);
CREATE INDEX webhook_outbox_by_room ON webhook_outbox (url, room, seq);
