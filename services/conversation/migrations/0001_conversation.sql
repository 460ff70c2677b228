-- Conversation: conversations, messages, offline messages, blocks and the outbox.
-- Portable SQL: the same file migrates PostgreSQL and SQLite. Times are Unix
-- milliseconds; booleans are 0 or 1.

CREATE TABLE conversations (
    conversation_id     TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    member_id           TEXT NOT NULL,
    member_name         TEXT NOT NULL,
    visitor_id          TEXT NOT NULL,
    visitor_name        TEXT NOT NULL,
    visitor_verified    BIGINT NOT NULL,
    visitor_external_id TEXT NOT NULL,
    visitor_member_id   TEXT NOT NULL,      -- '' unless the visitor is also a member
    state               TEXT NOT NULL,      -- 'open' or 'closed'
    started_at          BIGINT NOT NULL,
    closed_at           BIGINT,
    last_seq            BIGINT NOT NULL,    -- the newest message's sequence number
    last_activity_at    BIGINT NOT NULL,
    member_read_seq     BIGINT NOT NULL,
    visitor_read_seq    BIGINT NOT NULL,
    event_at            BIGINT NOT NULL     -- the outbox order key of the newest event
);

-- A visitor has at most one open conversation with an endpoint.
CREATE UNIQUE INDEX conversations_one_open
    ON conversations (app_id, visitor_id, endpoint) WHERE state = 'open';
CREATE INDEX conversations_by_member
    ON conversations (app_id, member_id, started_at, conversation_id);
CREATE INDEX conversations_by_visitor_member
    ON conversations (app_id, visitor_member_id, started_at, conversation_id);
CREATE INDEX conversations_by_visitor ON conversations (app_id, visitor_id);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL,          -- no foreign key: erasure deletes explicitly
    seq             BIGINT NOT NULL,
    message_id      TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    client_id       TEXT NOT NULL,          -- the sender's own id: sends are idempotent on it
    sender          TEXT NOT NULL,          -- 'visitor' or 'member'
    text            TEXT NOT NULL,
    sent_at         BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender, client_id)
);

CREATE INDEX messages_by_age ON messages (app_id, sent_at);

CREATE TABLE offline_messages (
    offline_message_id  TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL,
    member_id           TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    visitor_id          TEXT NOT NULL,
    visitor_name        TEXT NOT NULL,
    visitor_verified    BIGINT NOT NULL,
    visitor_external_id TEXT NOT NULL,
    visitor_member_id   TEXT NOT NULL,
    text                TEXT NOT NULL,
    email               TEXT NOT NULL,
    sent_at             BIGINT NOT NULL
);

CREATE INDEX offline_messages_by_member
    ON offline_messages (app_id, member_id, sent_at, offline_message_id);
CREATE INDEX offline_messages_by_visitor ON offline_messages (app_id, visitor_id);
CREATE INDEX offline_messages_by_age ON offline_messages (app_id, sent_at);

-- Visitors a member blocked.
CREATE TABLE blocked_visitors (
    app_id     TEXT NOT NULL,
    member_id  TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, member_id, visitor_id)
);

-- One row per visitor who started a conversation: starting takes this row's lock, so
-- the open-conversation limit holds under concurrent starts.
CREATE TABLE visitors (
    app_id     TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (app_id, visitor_id)
);

-- The transactional outbox: every change writes its events here in its own
-- transaction; the relay publishes them and then marks them published by deleting
-- them. Within a stream (a conversation) event_at strictly increases in commit order,
-- which is the order the relay publishes in.
CREATE TABLE outbox (
    event_id   TEXT PRIMARY KEY,
    stream     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    event_at   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX outbox_order ON outbox (event_at, stream);
