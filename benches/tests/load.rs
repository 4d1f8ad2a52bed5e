//! Load while writing: concurrent SQL sessions query while one handle ingests and another
//! compacts. Every answer must be exactly what the generation it read holds, every commit must
//! land, and the only errors allowed are the documented retriable ones.

use std::time::Duration;

use atlas_benches::load::{LoadConfig, run};

fn config(retention: Duration) -> LoadConfig {
    LoadConfig {
        readers: 3,
        batches: 40,
        per_batch: 20,
        values: 200,
        pause: Duration::from_millis(25),
        compact_every: Duration::from_millis(60),
        retention,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_their_snapshot_exactly_while_a_writer_ingests_and_another_handle_compacts()
{
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), &config(Duration::from_secs(5)))
        .await
        .unwrap();
    eprintln!(
        "{} queries over {} generations, {} session queries, {} commits, {} compactions, \
         errors {:?}, in {:.1?}",
        report.queries,
        report.generations_read,
        report.session_queries,
        report.commits,
        report.compactions,
        report.errors,
        report.elapsed
    );
    assert!(report.wrong.is_empty(), "{}", report.wrong.join("\n"));
    assert_eq!(report.commits, 40);
    assert_eq!(report.final_datasets, 40 * 20);
    let other = report.errors.get("other").copied().unwrap_or(0);
    assert_eq!(other, 0, "undocumented errors: {:?}", report.error_examples);
    // The run exercised what it claims to: reads across many generations, and compactions
    // committing between the writer's commits.
    assert!(
        report.generations_read >= 5,
        "{} generations",
        report.generations_read
    );
    assert!(
        report.compactions >= 2,
        "{} compactions landed",
        report.compactions
    );
    assert!(report.session_queries > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retention_readers_of_old_generations_get_only_the_retriable_segment_gone() {
    // Compaction removes what it retires at once: a reader still planning on the generation
    // before may find a segment gone, and must be told so (never answer from other data).
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), &config(Duration::ZERO)).await.unwrap();
    eprintln!(
        "{} queries, {} session queries ({} failed), {} compactions, errors {:?}",
        report.queries,
        report.session_queries,
        report.session_errors,
        report.compactions,
        report.errors
    );
    eprintln!(
        "failed at generations {:?}; final {}",
        report.failed_generations, report.final_generation
    );
    assert!(report.wrong.is_empty(), "{}", report.wrong.join("\n"));
    assert_eq!(report.final_datasets, 40 * 20);
    let other = report.errors.get("other").copied().unwrap_or(0);
    assert_eq!(other, 0, "undocumented errors: {:?}", report.error_examples);
}
