CREATE TABLE requests (
    ts timestamptz NOT NULL,
    request_id text NOT NULL,
    endpoint text,
    status integer,
    key_id text,
    team text,
    user_id text,
    model text,
    router text,
    route text,
    variant text,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd double precision NOT NULL DEFAULT 0,
    record jsonb NOT NULL
) PARTITION BY RANGE (ts);
-- feedback validation and the drill-down look requests up by id; spend scans whole days
CREATE INDEX requests_request_id ON requests (request_id);
CREATE TABLE feedback (
    ts timestamptz NOT NULL DEFAULT now(),
    request_id text NOT NULL,
    source text NOT NULL,
    model text NOT NULL,
    score double precision NOT NULL,
    thumbs text,
    comment text,
    PRIMARY KEY (request_id, source)
);
CREATE TABLE virtual_keys (
    id text PRIMARY KEY,
    hash text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    models text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    rpm bigint,
    tpm bigint,
    budget_day_usd double precision,
    budget_month_usd double precision,
    on_redis_error text
);
