-- Lower quantiles of each slot's per-minute counts: they calibrate the drop
-- side of the detector's band (bandSpread in src/domain/anomaly.ts). Rows
-- computed before this read as NaN, and the drop side then uses the stddev.
ALTER TABLE anomaly_baselines ADD COLUMN IF NOT EXISTS p01 Float64 DEFAULT nan AFTER median;
ALTER TABLE anomaly_baselines ADD COLUMN IF NOT EXISTS p05 Float64 DEFAULT nan AFTER p01;
