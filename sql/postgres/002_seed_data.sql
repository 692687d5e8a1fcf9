-- Seed rows (the seed's init.sql). ON CONFLICT DO NOTHING: re-running never
-- overwrites what an operator has changed since.
INSERT INTO services (name, display_name, description, owner_team, tier) VALUES
    ('api-gateway',          'API Gateway',          'Edge routing and authentication of public traffic', 'platform', 'critical'),
    ('auth-service',         'Auth Service',         'Logins, sessions and tokens',                       'identity', 'critical'),
    ('user-service',         'User Service',         'User profiles and accounts',                        'identity', 'standard'),
    ('payment-service',      'Payment Service',      'Payment authorization and capture',                 'payments', 'critical'),
    ('order-service',        'Order Service',        'Order lifecycle',                                   'commerce', 'critical'),
    ('inventory-service',    'Inventory Service',    'Stock levels and reservations',                     'commerce', 'standard'),
    ('notification-service', 'Notification Service', 'E-mail, SMS and push delivery',                     'platform', 'standard'),
    ('search-service',       'Search Service',       'Product search',                                    'discovery','best_effort')
ON CONFLICT (name) DO NOTHING;

INSERT INTO app_config (key, value, description) VALUES
    ('anomaly.z_threshold',         '3.0',          'Default z-score above which a window is anomalous'),
    ('anomaly.min_count',           '10',           'Windows with fewer events than this are scored with a Poisson tail'),
    ('anomaly.pending_windows',     '2',            'Anomalous windows in a row before an alert opens'),
    ('anomaly.resolve_windows',     '5',            'Normal windows in a row before an alert resolves'),
    ('anomaly.cooldown_minutes',    '30',           'Minimum time between notifications for one alert'),
    ('novelty.similarity_threshold','0.85',         'A pattern with no neighbour above this cosine similarity is novel'),
    ('nightly.cron',                '"0 2 * * *"',  'When the nightly analysis runs (UTC)'),
    ('baselines.cron',              '"0 3 * * 0"',  'When baselines are recomputed (UTC)'),
    ('baselines.weeks',             '4',            'Weeks of history the baselines are computed from'),
    ('retention.logs_days',         '30',           'Days logs are kept in ClickHouse')
ON CONFLICT (key) DO NOTHING;
