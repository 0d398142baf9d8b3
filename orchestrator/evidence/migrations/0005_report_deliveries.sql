-- 0005: deliveries also record the monthly reports the daemon mails (kind 'report';
-- orchestrator/daemon/report-mailer.ts): one row per client and month, policy '' (a report is
-- the client's), condition 'report', the file and month in payload. Never retried by the alert
-- engine (retry_pending stays false).
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check CHECK (kind IN ('alert', 'heartbeat', 'report'));
