-- A training's id is the number of the clean batch it decided (one training per clean batch),
-- not a sequence value: a training redone after a lost commit, or after a crash recovery that
-- advanced the sequence, keeps its id and so its version names (`t{batch:06}-{algorithm}`)
-- and its candidates key (`candidates/training-{batch:06}.json`).

-- Existing trainings take their batch's number, and everything that refers to them follows.
-- (Version names and artifact keys already written keep the names they were given.)
ALTER TABLE ops.model_versions DROP CONSTRAINT model_versions_training_id_fkey;
ALTER TABLE ops.promotions DROP CONSTRAINT promotions_training_id_fkey;

UPDATE ops.model_versions v SET training_id = t.batch_number
FROM ops.trainings t WHERE v.training_id = t.id AND t.id <> t.batch_number;
UPDATE ops.promotions p SET training_id = -1 - t.batch_number
FROM ops.trainings t WHERE p.training_id = t.id AND t.id <> t.batch_number;
UPDATE ops.promotions SET training_id = -1 - training_id WHERE training_id < 0;
UPDATE ops.drift_reports d SET reference_training = t.batch_number
FROM ops.trainings t WHERE d.reference_training = t.id AND t.id <> t.batch_number;
-- In two steps: unique keys are checked row by row, and an old id may be another row's batch
-- number. Batch numbers are never negative, so the first step collides with nothing.
UPDATE ops.trainings SET id = -1 - batch_number WHERE id <> batch_number;
UPDATE ops.trainings SET id = -1 - id WHERE id < 0;

ALTER TABLE ops.trainings ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE ops.trainings_id_seq;
ALTER TABLE ops.trainings ADD CONSTRAINT trainings_id_is_batch_number CHECK (id = batch_number);

ALTER TABLE ops.model_versions ADD CONSTRAINT model_versions_training_id_fkey
    FOREIGN KEY (training_id) REFERENCES ops.trainings (id);
ALTER TABLE ops.promotions ADD CONSTRAINT promotions_training_id_fkey
    FOREIGN KEY (training_id) REFERENCES ops.trainings (id);
