-- Identity: apps, members, grants, sessions and keys. Portable SQL: the same file
-- migrates PostgreSQL and SQLite. Times are Unix seconds.

CREATE TABLE apps (
    app_id          TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    origins         TEXT NOT NULL,          -- JSON array
    privacy_url     TEXT NOT NULL,
    logo_url        TEXT NOT NULL,
    return_urls     TEXT NOT NULL,          -- JSON array
    retention_days  BIGINT NOT NULL,
    limits          TEXT NOT NULL,          -- JSON object
    webhook_url     TEXT NOT NULL,
    webhook_events  TEXT NOT NULL,          -- JSON array
    webhook_secret  TEXT NOT NULL,
    api_secret_hash TEXT NOT NULL,          -- argon2 PHC string
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE identity_keys (
    app_id     TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    key_id     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    PRIMARY KEY (app_id, key_id),
    UNIQUE (app_id, generation)
);

CREATE TABLE members (
    member_id    TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    external_id  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email        TEXT NOT NULL,
    endpoint     TEXT UNIQUE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (app_id, external_id)
);

CREATE TABLE consent_requests (
    request_hash    TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    member_id       TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    return_url      TEXT NOT NULL,
    state           TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    csrf_token      TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    decided_at      BIGINT,
    code_hash       TEXT UNIQUE,
    code_expires_at BIGINT,
    code_used_at    BIGINT
);

CREATE TABLE grants (
    grant_id          TEXT PRIMARY KEY,
    app_id            TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    member_id         TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    request_hash      TEXT NOT NULL,
    scope             TEXT NOT NULL,
    access_token_hash TEXT NOT NULL UNIQUE,
    expires_at        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX grants_member ON grants (member_id, created_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE visitors (
    visitor_id   TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    external_id  TEXT,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (app_id, external_id)
);

CREATE TABLE visitor_sessions (
    session_id TEXT PRIMARY KEY,
    visitor_id TEXT NOT NULL REFERENCES visitors (visitor_id) ON DELETE CASCADE,
    app_id     TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE login_links (
    token_hash TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    member_id  TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE personal_access_tokens (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    seed       TEXT NOT NULL,               -- base64 Ed25519 seed
    public_key TEXT NOT NULL,               -- base64url, as in the JWK
    generation BIGINT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
