//! Test support (feature `testkit`): the conformance suite every backend must pass, a
//! model-based property test, given/when/then for aggregates, and the fixture aggregates they use.
//!
//! A backend crate stamps the whole suite into named tests with one macro call:
//!
//! ```text
//! annals::conformance_tests!(|| async { (MyStore::open_temp().await, ()) });
//! ```
//!
//! The factory returns the store and a guard kept alive for the test (a temporary directory, say).

pub mod conformance;
pub mod faults;
pub mod fixtures;
pub mod gwt;
pub mod model;
pub mod tally;

pub use gwt::given;

/// Stamps one named `#[tokio::test]` per guarantee of DESIGN §1 (and the model-based property
/// test) for the backend built by `$factory`: an expression callable as `$factory()` returning a
/// future of `(store, guard)`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_case!($factory, per_stream_order_and_optimistic_concurrency);
        $crate::__conformance_case!($factory, concurrent_writers_conflict_cleanly);
        $crate::__conformance_case!($factory, concurrent_appends_stand_or_fall_alone);
        $crate::__conformance_case!($factory, cached_repositories_stay_correct_beside_other_writers);
        $crate::__conformance_case!($factory, atomic_multi_stream_appends);
        $crate::__conformance_case!($factory, idempotent_appends);
        $crate::__conformance_case!($factory, lost_answers_are_retried_idempotently);
        $crate::__conformance_case!($factory, gap_free_global_log);
        $crate::__conformance_case!($factory, live_follower_sees_every_event_in_order);
        $crate::__conformance_case!($factory, snapshots_never_change_the_answer);
        $crate::__conformance_case!($factory, stale_snapshots_are_ignored);
        $crate::__conformance_case!($factory, fold_reads_match_stream_reads);
        $crate::__conformance_case!($factory, old_events_stay_readable);
        $crate::__conformance_case!($factory, bad_input_is_refused);
        $crate::__conformance_case!($factory, unknown_event_types_are_typed_errors);
        $crate::__conformance_case!($factory, time_travel_by_version_and_time);
        $crate::__conformance_case!(
            $factory,
            deleted_aggregates_refuse_commands_and_keep_their_history
        );
        $crate::__conformance_case!($factory, purged_streams_are_gone_and_the_purge_is_recorded);
        $crate::__conformance_case!($factory, positions_are_never_reused_after_a_purge);
        $crate::__conformance_case!($factory, deleted_streams_refuse_appends_until_restored);
        $crate::__conformance_case!($factory, refusals_name_streams_whatever_they_contain);
        $crate::__conformance_case!($factory, payloads_follow_one_json_policy);
        $crate::__conformance_case!($factory, personal_fields_are_encrypted_and_forgettable);
        $crate::__conformance_case!($factory, parked_messages_hold_no_personal_data_in_plain);
        $crate::__conformance_case!($factory, metadata_is_kept);
        $crate::__conformance_case!(
            $factory,
            subscriptions_catch_up_then_follow_from_a_durable_checkpoint
        );
        $crate::__conformance_case!($factory, inbox_makes_redelivered_messages_harmless);
        $crate::__conformance_case!($factory, subscriptions_with_lanes_keep_each_stream_in_order);
        $crate::__conformance_case!($factory, failing_messages_are_retried_parked_or_stop);
        $crate::__conformance_case!($factory, consumers_wait_out_an_outage_and_say_so);
        $crate::__conformance_case!(
            $factory,
            relay_publishes_every_event_in_stream_order_across_failures
        );
        $crate::__conformance_case!($factory, leases_admit_one_holder_until_expiry);
        $crate::__conformance_case!($factory, relayed_events_are_upcast);

        #[test]
        fn model_based_random_histories() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            $crate::testkit::model::check(|ops| {
                rt.block_on(async {
                    let (store, _guard) = ($factory)().await;
                    $crate::testkit::model::run(&store, ops).await
                })
            });
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case {
    ($factory:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, _guard) = ($factory)().await;
            $crate::testkit::conformance::$name(store).await;
        }
    };
}
