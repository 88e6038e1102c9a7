//! Following the batch API's cursor without losing a batch.
//!
//! The cursor (DESIGN.md §5) moves on every call and has no acknowledgement: an answer lost on
//! the way (a 5xx after the API moved on, a timeout, a body cut short) takes its batch out of
//! the sequence. The sequence is deterministic, though, and `GET /restart_data_generation`
//! rewinds it, so a lost batch can always be fetched again. [`take_batch`] does that:
//!
//! - **The base is learned, not assumed.** Before anything is stored, ingest does not know
//!   whether the API numbers from 0 (the course API), 1, or anything else, nor whether someone
//!   already moved its cursor. So it rewinds first, and the first answer after a rewind that
//!   no failed attempt preceded is the first batch of the sequence, whatever its number.
//! - **After that, the batch wanted is `last stored + 1`.** An older number is skipped (the
//!   cursor is behind, after a rewind). A newer number means the wanted one was lost: rewind and
//!   walk forward to it.
//! - **The end is only trusted when nothing may be behind the cursor.** The API's end-of-data
//!   answer comes right after a lost last batch too. So if an attempt of this firing failed
//!   since the last rewind, or an earlier firing started a fetch for the wanted batch and never
//!   stored it, "nothing left" triggers a rewind, and only an end reached with no failure on the
//!   way is believed.
//!
//! Every rewind re-walks the sequence, so their number per firing is bounded
//! ([`MAX_REWINDS`]); a firing that runs out fails (the platform retries it later) and stores
//! nothing it has not got whole.

use crate::source_client::{Fetched, ReceivedBatch, SourceClient};

/// Which batch a firing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Nothing is stored yet: the sequence's first batch, whatever its number.
    First,
    /// This batch number (`last stored + 1`).
    Number(i32),
}

/// The batch a firing was after, and what it cost to get it.
pub struct Taken {
    pub batch: ReceivedBatch,
    /// Batches fetched and dropped on the way (already stored, or fetched while recovering).
    pub skipped: Vec<i32>,
    /// How many times the API was rewound.
    pub rewinds: u32,
}

/// Rewinds one firing may make (each re-walks the sequence from its start).
pub const MAX_REWINDS: u32 = 3;

/// Calls to `GET /data` one firing may make.
const MAX_FETCHES: usize = 1_000;

/// Fetches until the `wanted` batch comes, rewinding when it may be behind the cursor. `None`
/// when the API has nothing left and nothing can have been lost. `earlier_loss` says that an
/// earlier firing started fetching the wanted batch and never stored it.
pub async fn take_batch(
    source: &SourceClient,
    wanted: Wanted,
    earlier_loss: bool,
) -> anyhow::Result<Option<Taken>> {
    let mut walk = Walk {
        source,
        skipped: Vec::new(),
        rewinds: 0,
        behind: earlier_loss,
    };
    if wanted == Wanted::First {
        // Put the cursor at the sequence's start; this first rewind is not a recovery.
        source.restart().await?;
        walk.behind = false;
    }
    for _ in 0..MAX_FETCHES {
        let fetch = source.fetch_next().await?;
        walk.behind |= fetch.lost_answers > 0;
        match (fetch.answer, wanted) {
            (Fetched::Exhausted, _) if walk.behind => {
                tracing::warn!(
                    ?wanted,
                    "the batch API says it has nothing left, but an answer was lost on the way; rewinding to look for it"
                );
                walk.rewind().await?;
            }
            (Fetched::Exhausted, _) => return Ok(None),
            (Fetched::Batch(batch), Wanted::First) if !walk.behind => {
                tracing::info!(
                    batch = batch.batch_number,
                    "the batch API's sequence starts here"
                );
                return Ok(Some(walk.taken(batch)));
            }
            (Fetched::Batch(batch), Wanted::First) => {
                // A failed attempt came first: this may not be the sequence's first batch.
                walk.skipped.push(batch.batch_number);
                walk.rewind().await?;
            }
            (Fetched::Batch(batch), Wanted::Number(number)) if batch.batch_number == number => {
                return Ok(Some(walk.taken(batch)));
            }
            (Fetched::Batch(batch), Wanted::Number(number)) if batch.batch_number < number => {
                // Already stored: the cursor is behind (it was rewound). Walk forward.
                walk.skipped.push(batch.batch_number);
            }
            (Fetched::Batch(batch), Wanted::Number(number)) if walk.rewinds == 0 || walk.behind => {
                tracing::warn!(
                    wanted = number,
                    received = batch.batch_number,
                    "a batch was lost in flight; rewinding the batch API"
                );
                walk.skipped.push(batch.batch_number);
                walk.rewind().await?;
            }
            (Fetched::Batch(batch), Wanted::Number(number)) => anyhow::bail!(
                "the batch API sent batch {} while batch {number} was wanted, even after a \
                 rewind with no answer lost: its sequence is not deterministic",
                batch.batch_number
            ),
        }
    }
    anyhow::bail!("{wanted:?} did not come in {MAX_FETCHES} calls to the batch API")
}

/// One firing's walk along the cursor.
struct Walk<'a> {
    source: &'a SourceClient,
    skipped: Vec<i32>,
    rewinds: u32,
    /// The wanted batch may be behind the cursor: an answer was lost since the last rewind.
    behind: bool,
}

impl Walk<'_> {
    async fn rewind(&mut self) -> anyhow::Result<()> {
        if self.rewinds == MAX_REWINDS {
            anyhow::bail!(
                "answers from the batch API were lost again after {MAX_REWINDS} rewinds; \
                 giving up for this firing (the next one starts over, nothing is lost)"
            );
        }
        self.source.restart().await?;
        self.rewinds += 1;
        self.behind = false;
        Ok(())
    }

    fn taken(self, batch: ReceivedBatch) -> Taken {
        Taken {
            batch,
            skipped: self.skipped,
            rewinds: self.rewinds,
        }
    }
}
