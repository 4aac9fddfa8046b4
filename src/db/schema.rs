// The tables of `migrations/`, as diesel sees them (`diesel print-schema` output).

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        name -> Text,
        token_hash -> Bytea,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    encryption_keys (id) {
        id -> Int4,
        wrapped_key -> Bytea,
        kek_id -> Text,
        state -> Text,
        algorithm -> Text,
        encryption_count -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    master_key_kdf (singleton) {
        singleton -> Bool,
        algorithm -> Text,
        salt -> Bytea,
        m_cost_kib -> Int4,
        t_cost -> Int4,
        parallelism -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    session_activity (id) {
        id -> Int8,
        session_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        activity_type -> Text,
        actor -> Text,
        request_id -> Nullable<Text>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    user_sessions (id) {
        id -> Uuid,
        user_id -> Text,
        session_id -> Text,
        username -> Nullable<Text>,
        api_id -> Int4,
        api_hash_encrypted -> Bytea,
        phone_encrypted -> Nullable<Bytea>,
        session_data_encrypted -> Nullable<Bytea>,
        data_key_id -> Int4,
        is_active -> Bool,
        is_authorized -> Bool,
        digital_twin_enabled -> Bool,
        auto_reply_enabled -> Bool,
        target_chats -> Jsonb,
        last_seen_at -> Nullable<Timestamptz>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(user_sessions -> encryption_keys (data_key_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    encryption_keys,
    master_key_kdf,
    session_activity,
    user_sessions,
);

// Leases (migrations/2026-12-01-000002_session_leases); queried in SQL by `db::leases`.
diesel::table! {
    session_leases (session_id) {
        session_id -> Text,
        holder -> Text,
        fence -> Int8,
        acquired_at -> Timestamptz,
        expires_at -> Timestamptz,
        prior_holder -> Nullable<Text>,
    }
}

diesel::table! {
    lease_holders (holder) {
        holder -> Text,
        started_at -> Timestamptz,
        seen_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}
