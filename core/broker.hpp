// core/broker.hpp — the broker kernel: queues, topics, consumers, acknowledgements.
//
// Sharded by destination: each destination is owned by one worker (hash of its name) and only
// that worker touches it. A call made on any worker is posted to the owner; its completion is
// posted back and runs later on the calling worker, never inside the call. Topic subscriptions
// are broadcast to every shard, so a publish is matched where the topic lives and never crosses
// shards to find subscribers. No locks on the message path.
//
// Messages between workers (all closures posted through core::executor):
//   caller -> owner shard : publish, subscribe, browse, unsubscribe, ack, nack, settle, grant,
//                           set_credit, drain, stats
//   owner  -> caller      : publish/subscribe/unsubscribe/stats completions
//   owner  -> consumer    : consumer_sink::on_delivery (one message per call), on_browse_end
//   topic shard -> credit shard : a topic message for a link-credit subscription (see credit_mode)
//   shard  -> DLQ owner   : a dead-lettered message
//   caller -> ack shards  : commit, step 1: settle the transaction's acks; each shard sends
//                           back the store removes it owes (the messages leave memory now)
//   last shard -> store   : commit, step 2: one store transaction (removes + persistent sends)
//   store  -> caller      : commit, step 3: durable; the sends are posted, already stored, to
//                           their destinations' shards; `done` once all accepted them
//   caller -> name's shard: create_temporary, and connection_closed's deletion of it
//
// A connection's own state in the kernel (its open core::transaction objects, its temporary
// destinations) is kept on the connection's worker, in connections_, and touched only there;
// connection_closed ends both.
//
// Transactions across shards: the sends and acks of one transaction may touch destinations of
// several shards, but there is one store for all of them, so atomicity is the store's: step 2
// writes every add and remove as one store transaction (the journal: one group of records,
// tx_begin .. tx_commit, in one batch, applied by recovery only when whole). In memory nothing
// needs to be atomic, because memory does not survive a crash: before step 2 is durable a
// crash leaves the journal as it was before the transaction (the acked messages come back as
// unacknowledged, the sends never happened); after it, everything is there. The sends are not
// visible to consumers until then, so nobody can consume a message a crash could take back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/executor.hpp"
#include "core/message/message.hpp"
#include "core/selector/selector.hpp"
#include "core/schedule/scheduler.hpp"
#include "core/store/store.hpp"

namespace sb::core {

class transaction;

using consumer_id = std::uint64_t;
using producer_id = std::uint64_t;
using delivery_tag = std::uint64_t;  // unique in the broker; the top byte names the shard

struct delivery {
    message_ptr msg;
    delivery_tag tag = 0;
    std::uint32_t redeliveries = 0;  // times this message was delivered before
    bool retained = false;           // sent because it is a topic's retained message
    // Its message group was assigned to this consumer with it (JMS JMSXGroupFirstForConsumer).
    bool group_first = false;
};

// Implemented by a protocol session. The kernel calls it on the consumer's home worker (the
// worker that subscribed). A delivery counts against the consumer's credit (see credit_mode)
// until it is settled through the broker.
class consumer_sink {
public:
    virtual void on_delivery(consumer_id id, delivery d) = 0;
    // A browser (broker::browse) has been sent every message of its snapshot: called once,
    // after its last on_delivery. Sinks that never browse need not implement it.
    virtual void on_browse_end(consumer_id id) { (void)id; }

protected:
    ~consumer_sink() = default;
};

// How a consumer's credit (the deliveries the kernel may send it now) comes back.
//   window: the JMS / STOMP / MQTT prefetch. At most `prefetch` deliveries are unsettled at a
//           time: settling one (any outcome) lets another through. grant / set_credit move the
//           window; a window of 0 dispatches nothing.
//   link:   AMQP 1.0 link credit. Each delivery uses one unit, settling gives none back: only
//           grant / set_credit add. The initial credit is `prefetch`.
// Credit is per consumer and exact on a queue (a durable subscription's too) and for a link
// credit topic subscription: the latter's messages, matched on the topics' shards, are taken on
// one shard (its home worker's), where its credit, backlog and deliveries live; it never holds
// publishers (beyond max_pending its oldest are dropped). A window topic subscription keeps the
// window on each shard (each shard's topics may have `prefetch` unsettled), holding publishers
// while congested as before; shared subscriptions are window subscriptions.
enum class credit_mode : std::uint8_t { window, link };

struct subscribe_options {
    // Unsettled deliveries (window) or initial credit (link); nullopt = the broker default,
    // 0 = nothing is dispatched until credit is granted (a pull consumer).
    std::optional<std::uint32_t> prefetch;
    credit_mode credit = credit_mode::window;
    bool no_local = false;            // skip messages published by `connection`
    std::uint64_t connection = 0;
    bool want_retained = true;        // topics: receive matching retained messages first
    std::size_t max_pending = 0;      // topics: buffered beyond prefetch; 0 = the broker default
    // Topics: a shared subscription (MQTT $share/<group>/...): each message goes to one member
    // of the group with the same filter.
    std::string share_group;
    // Topics, durable subscriptions too (not shared ones): the subscriptions of one subscriber
    // (an MQTT client's overlapping filters) share a nonzero `subscriber`, and a message that
    // matches several of them is delivered once, to the first that takes it; the subscriber
    // finds the others itself (MQTT 5 §3.3.4). Retained messages still go to each new one.
    std::uint64_t subscriber = 0;

    // Queues: consumer choice (ActiveMQ's). While an exclusive consumer is subscribed, it alone
    // is dispatched to (the first exclusive one, or a later one of higher priority or of 127);
    // when it leaves, the exclusive one of highest priority left, else every consumer.
    // Messages go to the consumers of the highest `priority` that have credit, round robin
    // among them; lower ones get messages only while those are full. A message with a
    // group_id goes to its group's owner only (the consumer that took the group's first
    // message, delivered with group_first); group_seq 1 opens the group anew, a negative one
    // closes it after its owner got it; an owner that leaves leaves its groups to others.
    // docs/activemq-groups.md has the details.
    bool exclusive = false;
    std::int8_t priority = 0;
    // ---- selectors (issue 18; core/selector, core/kernel/selective.cpp) ----
    // A JMS message selector; null = every message. A queue consumer is dispatched only the
    // messages it selects (the others stay queued for other consumers, without holding up those
    // behind them); a topic subscription skips the others; a durable subscription takes only
    // selected messages into its queue and keeps the selector in the store (re-subscribing with
    // another selector makes it a new subscription: what it held is dropped, as ActiveMQ does).
    selector_ptr selector;
};

enum class publish_status : std::uint8_t {
    ok,
    store_failed,
    no_destination,   // a temporary destination that does not exist (any more): nothing was sent
    invalid,          // a property the kernel acts on is malformed (AMQ_SCHEDULED_*): nothing was sent
};

enum class subscribe_status : std::uint8_t {
    ok,
    no_destination,   // a temporary destination that does not exist (any more)
    not_owner,        // a temporary destination of another connection: only its owner consumes
};

// How a consumer settles a delivery (AMQP 1.0's outcomes; JMS and STOMP acks map onto them).
//   accepted: consumed; it leaves the queue (and the store).
//   released: not processed; back to the head of the queue, its redelivery count unchanged.
//   modified: delivery_failed counts a redelivery (dead-lettered past max_redeliveries: a
//             NACK); undeliverable_here: never sent to this consumer again (others get it;
//             forgotten on a restart). Neither flag: as released.
//   rejected: invalid; to the dead-letter queue at once, `reason` kept on the dead-lettered copy
//             as the property dlq_failure_cause_property (when not empty).
// A topic delivery (not a durable subscription's) has nothing to go back to: any outcome only
// settles it.
struct settle_outcome {
    enum class kind : std::uint8_t { accepted, released, modified, rejected };
    kind what = kind::accepted;
    bool delivery_failed = false;
    bool undeliverable_here = false;
    std::string reason;

    static settle_outcome accepted() { return {}; }
    static settle_outcome released() { return {kind::released, false, false, {}}; }
    static settle_outcome modified(bool delivery_failed, bool undeliverable_here) {
        return {kind::modified, delivery_failed, undeliverable_here, {}};
    }
    static settle_outcome rejected(std::string reason = {}) { return {kind::rejected, false, false, std::move(reason)}; }
};

// What broker::drain did: `delivered` deliveries were sent within the credit, then `unused`
// units of credit were left and are now used up (AMQP: the delivery-count advance of the drain).
struct drain_result {
    std::uint32_t delivered = 0;
    std::uint32_t unused = 0;
};

// A local transaction (STOMP BEGIN ... COMMIT, later JMS and AMQP transactions): what a session
// buffered until the commit.
struct local_transaction {
    std::vector<message_ptr> sends;                              // in the order they were sent
    std::vector<std::pair<consumer_id, delivery_tag>> acks;      // deliveries acknowledged
};

enum class dead_letter_policy : std::uint8_t { shared, per_destination };

// sched: a dead-letter policy for the queues whose names match `pattern` (ActiveMQ's
// policyEntry deadLetterStrategy): the first rule of broker_settings::dead_letter_rules whose
// pattern matches a queue applies to it, else the broker-wide settings.
struct dead_letter_rule {
    std::string pattern = ">";               // queue name pattern ('*' one level, '>' the rest)
    dead_letter_policy strategy = dead_letter_policy::shared;
    std::string queue = "ActiveMQ.DLQ";      // shared: the dead-letter queue
    std::string prefix = "DLQ.";             // per_destination: <prefix><queue><suffix>
    std::string suffix;
    bool process_expired = true;             // expired messages go to the DLQ (else dropped)
    bool process_non_persistent = true;      // non-persistent ones too (else dropped)
};

struct broker_settings {
    std::string name = "switchboard";
    std::uint32_t max_redeliveries = 6;
    dead_letter_policy dead_letter = dead_letter_policy::shared;
    std::uint32_t default_prefetch = 1000;
    // Bytes of messages a queue keeps in memory. Beyond it, persistent messages stay in the
    // store only and are loaded back as the queue drains (when the store can load them);
    // non-persistent ones hold their producers until the queue drains (flow control).
    std::size_t queue_memory_limit = std::size_t{64} << 20;
    std::size_t topic_max_pending = 10000;
    // Sends and settled deliveries one kernel transaction may buffer (begin_transaction).
    std::size_t max_transaction_frames = 100000;
    // Message groups a queue remembers (their owners); beyond, the least recently used is
    // forgotten and gets a new owner with its next message (ActiveMQ: 1024).
    std::size_t max_message_groups = 1024;
    // Advisory topics (ActiveMQ.Advisory.Consumer.*, .TempQueue, .TempTopic, .Expired.*,
    // .MessageDLQd.*; docs/activemq-advisories.md). ActiveMQ has them on by default; here they
    // are off unless configured (a `>` or `#` subscriber would otherwise see them).
    bool advisories = false;

    // ---- sched: scheduled delivery, virtual topics, composite destinations, dead letters ----
    // ActiveMQ's schedulerSupport: a message with AMQ_SCHEDULED_DELAY / _PERIOD / _CRON is held
    // by the scheduler until its time (core/kernel/schedule.cpp). Off: delivered at once.
    bool scheduler_support = true;
    // ActiveMQ's virtualTopic: a publish to a topic matching virtual_topic_name also goes to
    // every queue <virtual_topic_prefix with '*' = a consumer name><topic><virtual_topic_postfix>
    // that has had a consumer (core/kernel/virtual.cpp). Empty name: no virtual topics.
    std::string virtual_topic_name = "VirtualTopic.>";
    std::string virtual_topic_prefix = "Consumer.*.";
    std::string virtual_topic_postfix;
    // Broker-wide dead-letter policy beyond `dead_letter` (queue names, expired and
    // non-persistent messages), and per-queue rules before it (first match wins).
    std::string dead_letter_queue = std::string("ActiveMQ.DLQ");
    std::string dead_letter_prefix = "DLQ.";
    std::string dead_letter_suffix;
    bool dead_letter_expired = true;
    bool dead_letter_non_persistent = true;
    std::vector<dead_letter_rule> dead_letter_rules;
};

inline constexpr std::string_view shared_dlq_name = "ActiveMQ.DLQ";
inline constexpr std::string_view dlq_prefix = "DLQ.";
// Property set on a dead-lettered copy: where the message came from.
inline constexpr std::string_view original_destination_property = "original-destination";
// Property set on a rejected message's dead-lettered copy: the reason (ActiveMQ's name).
inline constexpr std::string_view dlq_failure_cause_property = "dlqDeliveryFailureCause";
// sched: scheduled delivery's message properties (ActiveMQ's ScheduledMessage names).
inline constexpr std::string_view scheduled_delay_property = "AMQ_SCHEDULED_DELAY";
inline constexpr std::string_view scheduled_period_property = "AMQ_SCHEDULED_PERIOD";
inline constexpr std::string_view scheduled_repeat_property = "AMQ_SCHEDULED_REPEAT";
inline constexpr std::string_view scheduled_cron_property = "AMQ_SCHEDULED_CRON";
inline constexpr std::string_view scheduled_id_property = "AMQ_SCHEDULED_ID";
// Set on every message a scheduled job delivers: the job's id.
inline constexpr std::string_view scheduled_job_id_property = "scheduledJobId";
// The store's queue name for scheduled jobs (not a kernel queue).
inline constexpr std::string_view scheduled_store_queue = "$scheduled";

struct destination_stats {
    destination dest;
    std::uint64_t enqueued = 0;       // accepted by the destination
    std::uint64_t dequeued = 0;       // acknowledged (queues) or delivered (topics)
    std::uint64_t dead_lettered = 0;
    std::uint64_t expired = 0;
    std::uint64_t dropped = 0;        // topic messages dropped for slow subscribers
    std::uint64_t depth = 0;          // queued, not yet delivered (incl. held by flow control)
    std::uint64_t paged = 0;          // of depth: persistent messages whose body is on disk only
    std::uint64_t inflight = 0;       // delivered, not yet acknowledged
    std::uint64_t consumers = 0;
    std::uint64_t memory_bytes = 0;
    bool retained = false;            // topics: has a retained message
};

class broker {
public:
    // `workers` are the shards, in index order; they outlive the broker. `st` outlives it too.
    broker(broker_settings settings, std::vector<executor*> workers, store& st);
    // stop(0) first.
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    // Before any worker runs: load the store's pending messages into their queues.
    // Returns how many were recovered.
    std::size_t recover();

    // Everything below is called on a worker thread (executor::current() != nullptr).

    // Fresh ids, unique in this broker; no cross-worker traffic.
    message_id next_message_id() noexcept;
    consumer_id next_consumer_id() noexcept;

    // Enqueue on a queue or fan out on a topic. `done` runs once the message is accepted:
    // for a persistent queue message, after the store made it durable; when a queue is over
    // its memory limit, a non-persistent one (or a persistent one with a store that cannot
    // load()) only after it drained (producer flow control).
    void publish(message_ptr msg, std::function<void(publish_status)> done);

    // publish, and `done` also learns how many subscriptions the message matched when it was
    // published: on a topic, the subscribers it was offered to (those skipping it for no_local
    // not counted), each shared-subscription group once, and each durable subscription; a queue
    // counts 1. Taken on the owner shard, so consistent with the fan-out. (MQTT 5 answers 0
    // with reason 0x10, No matching subscribers.)
    void publish_counted(message_ptr msg, std::function<void(publish_status, std::size_t matched)> done);

    // A queue consumer competes with the queue's other consumers; a topic subscription (the
    // name may have wildcards) receives every matching message published after `done` runs.
    // A queue name with wildcards (ActiveMQ's "orders.>") makes one consumer that competes in
    // every matching queue, existing or created later (not "$..." kernel queues, nor temporary
    // ones); its credit is a window per shard, as a window topic subscription's, and an ack,
    // nack or its end settles each delivery on the queue it came from.
    void subscribe(consumer_id id, const destination& dest, subscribe_options opt,
                   std::weak_ptr<consumer_sink> sink, std::function<void()> done);

    // subscribe, answering whether the subscription was made: always ok but for a temporary
    // destination that is gone (no_destination) or whose owner is not opt.connection
    // (not_owner). A temporary topic's subscription lives on its owner shard only.
    void subscribe_checked(consumer_id id, const destination& dest, subscribe_options opt,
                           std::weak_ptr<consumer_sink> sink, std::function<void(subscribe_status)> done);

    // Durable topic subscriptions. A durable subscription `name` collects every message
    // published to a topic matching `filter` into its own queue (durable_queue(name)), kept by
    // the store and across restarts, whether a consumer is attached or not. subscribe_durable
    // creates (or re-points) it and attaches consumer `id` to that queue: ack, nack and
    // unsubscribe then use destination durable_queue(name). unsubscribe_durable deletes it and
    // what it holds.
    static destination durable_queue(std::string_view name);
    // `data` is kept with the subscription for its owner (see recovered_subscriptions()).
    void subscribe_durable(consumer_id id, const std::string& name, const destination& filter,
                           subscribe_options opt, std::weak_ptr<consumer_sink> sink, std::function<void()> done,
                           std::string data = {});

    // The durable subscriptions recover() found (for adapters that rebuild sessions from them).
    const std::vector<subscription_record>& recovered_subscriptions() const noexcept { return recovered_subs_; }
    void unsubscribe_durable(const std::string& name, std::function<void()> done = {});

    // Moves an existing consumer to a new sink (a resumed persistent session). Its unacked
    // deliveries are sent again, counted as redeliveries, with their tags; `done` runs on the
    // calling worker once every shard has switched. An empty `sink` detaches the consumer
    // (a persistent session went offline): it keeps queueing but never holds producers.
    void attach(consumer_id id, const destination& dest, std::weak_ptr<consumer_sink> sink,
                std::function<void()> done);

    // Consumer credit (see credit_mode), at any time after subscribe (or browse), for a queue
    // consumer on the queue's shard, for a topic subscription on every shard (window) or on its
    // credit shard (link). `grant` adds `n`: to the window, or to the link credit. `set_credit`
    // sets the window, or the link credit, to `n`: lower takes credit back (what is in flight
    // stays in flight); a window of 0, or a link credit of 0, stops dispatch. Whatever waited
    // for credit is dispatched at once.
    void grant(consumer_id id, const destination& dest, std::uint32_t n);
    void set_credit(consumer_id id, const destination& dest, std::uint32_t n);
    // Dispatches what is available within the credit, then uses up the rest: a link credit
    // becomes 0, a window becomes 0 (its unsettled deliveries no longer bring credit back). So
    // nothing more is dispatched until credit is granted again. `done` runs on the calling
    // worker after the drain's deliveries reached the sink (they are posted first), with how
    // many were sent and how much credit was left (on a window topic: summed over the shards).
    // An unknown consumer: {0, 0}.
    void drain(consumer_id id, const destination& dest, std::function<void(drain_result)> done);

    // A queue browser: consumer `id` is sent every message in queue `dest` when the call
    // arrives at the queue's shard (queued or paged out to the store; not those in flight to
    // consumers), in dispatch order (priority, then arrival), each once, without consuming
    // them; then sink->on_browse_end(id). Credit applies as to any consumer (opt.prefetch,
    // opt.credit; settling a browsed delivery only gives its window back). Expired messages,
    // and paged-out ones consumed meanwhile (no longer in the store), are skipped. A browser
    // stays registered until unsubscribe(id, dest), and is never counted as a queue consumer.
    void browse(consumer_id id, const destination& dest, subscribe_options opt, std::weak_ptr<consumer_sink> sink,
                std::function<void()> done = {});

    // Flow from the consumer's side, the first form of consumer credit: a paused consumer is
    // dispatched nothing more (a queue's messages go to its other consumers or wait for it; a
    // topic's wait in the subscription's backlog, the oldest dropped beyond its cap) and holds
    // no topic producer, until it is resumed. A session pauses its consumers while its
    // connection cannot take more output (adapters/engine/output_flow.hpp). A new subscription,
    // and one attached to a new sink, starts resumed.
    void pause(consumer_id id, const destination& dest);
    void resume(consumer_id id, const destination& dest);

    // Sends the matching retained messages again to an existing topic subscription (MQTT: a
    // SUBSCRIBE repeating a filter re-sends them without interrupting the flow).
    void resend_retained(consumer_id id, const destination& dest);

    // Ends a subscription. Its unacknowledged queue messages go back to the queue, counted as
    // a redelivery (dead-lettered past max_redeliveries).
    void unsubscribe(consumer_id id, const destination& dest, std::function<void()> done = {});

    // Settles deliveries of consumer `id` with one outcome (see settle_outcome). Unknown tags
    // are ignored. `done` (optional) runs on the calling worker once the outcome took effect,
    // and what it wrote to the store is durable: the removal of accepted persistent messages
    // (so an acknowledgement confirmed to a client is never undone by a crash), and for those
    // dead-lettered (rejected, or modified past max_redeliveries) the removal and the
    // dead-letter queue's copy.
    void settle(consumer_id id, std::vector<delivery_tag> tags, settle_outcome outcome,
                std::function<void()> done = {});
    // settle(accepted).
    void ack(consumer_id id, std::vector<delivery_tag> tags, std::function<void()> done = {});
    // settle(modified{delivery_failed}): redeliver (counted) or dead-letter past
    // max_redeliveries. Topic deliveries are dropped.
    void nack(consumer_id id, std::vector<delivery_tag> tags);

    // A kernel transaction for `connection` (core/transaction.hpp), used on this worker only.
    // `max_frames` 0: settings().max_transaction_frames. Rolled back by connection_closed.
    std::unique_ptr<transaction> begin_transaction(std::uint64_t connection, std::size_t max_frames = 0);

    // A temporary queue or topic (`kind` queue / topic, or their temp_ forms) owned by
    // `connection`, which must live on this worker: named "ID:<broker name>-<connection>-<n>",
    // unique in this broker. Any connection may send to it; only the owner may consume from it
    // (subscribe_checked answers not_owner to the others) or browse it (another connection's
    // browser, opt.connection, sees it empty). Nothing sent to it is stored: a
    // persistent send is accepted as non-persistent (confirmed at once, delivered with
    // persistent = false, lost by a restart like the destination itself), in a transaction
    // too. It matches no wildcard subscription, has no retained message and no dead letter
    // queue (a message past max_redeliveries is dropped, counted dead_lettered). Returned at
    // once; `done` runs on this worker once it exists on its shard (a send posted from this
    // worker after the call arrives after it in any case). Deleted with everything it holds,
    // and its consumers with it, by connection_closed(connection); then a send to it answers
    // publish_status::no_destination, a subscribe subscribe_status::no_destination.
    destination create_temporary(std::uint64_t connection, dest_kind kind, std::function<void()> done = {});

    // The end of `connection`, on its worker: rolls back its open transactions, deletes its
    // temporary destinations and removes its producers (add_producer). `done` runs on this
    // worker once every shard dropped them. Harmless for a connection that has none.
    void connection_closed(std::uint64_t connection, std::function<void()> done = {});

    // Commits a local transaction that the caller (a session) buffered until now: its acks and
    // its sends take effect as one unit. `done` runs on the calling worker once the store holds
    // all of it durably (the removes of the acknowledged persistent messages and the adds of
    // the persistent sends, written as one store transaction: after a crash all of it or none)
    // and the sends were accepted by their destinations; store_failed if the store could not.
    // The sends become visible to consumers only after that store transaction is durable, so
    // no consumer sees a message that a crash could still take back. Acks of unknown tags are
    // ignored. Rolling back is the caller's: drop the sends and nack the deliveries.
    // core::transaction (begin_transaction) buffers for the caller and commits through here.
    void commit(local_transaction tx, std::function<void(publish_status)> done);

    // A snapshot of every destination's counters, gathered from all shards.
    void stats(std::function<void(std::vector<destination_stats>)> done);

    // ---- producers (ActiveMQ.Advisory.Producer.*; core/kernel/advisory.cpp) ----
    // A producer as the protocols that have them announce one: an OpenWire ProducerInfo with
    // a destination, an AMQP sender link with a target address. STOMP and MQTT have none (and
    // ActiveMQ advises no STOMP producer: its STOMP sends go through one anonymous producer);
    // an anonymous producer (no destination: each message names its own) is not registered
    // either. The kernel keeps producers only to advise them, when
    // broker_settings::advisories is on (else both calls do nothing):
    // ActiveMQ.Advisory.Producer.Queue.<name> (a queue or temporary queue) or
    // ActiveMQ.Advisory.Producer.Topic.<name> gets a ProducerInfo when one is added and a
    // RemoveInfo when it goes, with the property producerCount (the destination's producers
    // after the event), and a new subscription to a Producer advisory topic is first sent the
    // producers registered before it (docs/activemq-advisories.md).
    // Called on `connection`'s worker; `id` is unique in the broker (take next_consumer_id()).
    // The producers still registered when connection_closed(connection) runs are removed then.
    void add_producer(std::uint64_t connection, producer_id id, const destination& dest);
    void remove_producer(std::uint64_t connection, producer_id id);

    // ---- sched: scheduled delivery (core/kernel/schedule.cpp) ----
    // The scheduler reads time from `t` (outliving the broker) instead of the wall clock, and no
    // thread fires jobs: run_scheduled() fires what is due by t's now (tests). Before recover().
    void use_time_source(time_source& t);
    // Fires the jobs due by the time source's now (with use_time_source); returns how many.
    std::size_t run_scheduled();
    // Jobs waiting in the scheduler (each scheduled message once, until its last firing).
    std::size_t scheduled_count() const;
    // Firings whose store work is under way: a persistent job's record is removed, and its next
    // occurrence stored and filed, once its delivered copy was accepted.
    std::size_t firings_in_flight() const noexcept;
    // Ends scheduled delivery, from a thread that is not a worker, while the workers still run
    // (the gateway, before it stops them): no job fires after it returns. The firings under
    // way get up to `grace` to finish their store work (their completions run on the workers);
    // what is left of it then is dropped (a persistent job whose removal was not written fires
    // again after a restart: twice, never lost). Returns once everything the scheduler gave
    // the store is done (a store barrier), so no completion of it runs on a store's thread
    // afterwards, and the completions already posted to workers do nothing. Idempotent.
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

    const broker_settings& settings() const noexcept { return settings_; }
    std::size_t shard_count() const noexcept { return shards_.size(); }
    std::size_t shard_of(std::string_view destination_name) const noexcept;

private:
    friend class transaction;
    struct shard;
    // What the kernel keeps about a connection that has open transactions or temporary
    // destinations, on the connection's worker (connections_[worker index]), touched only there.
    struct connection_entry {
        std::vector<transaction*> transactions;   // open ones
        std::vector<destination> temporaries;
        std::uint64_t temporaries_made = 0;
        std::vector<std::pair<producer_id, destination>> producers;   // add_producer's
        bool empty() const noexcept { return transactions.empty() && temporaries.empty() && producers.empty(); }
    };
    struct alignas(64) connection_table {
        std::unordered_map<std::uint64_t, connection_entry> by_id;
    };
    void forget_transaction(std::size_t worker, const transaction& tx) noexcept;

    struct commit_state;
    void write_commit(std::shared_ptr<commit_state> st);
    void publish_committed(std::shared_ptr<commit_state> st, publish_status status);

    broker_settings settings_;
    store& store_;
    bool paging_;   // the store can load messages back: queues page out beyond their limit
    std::vector<std::unique_ptr<shard>> shards_;
    struct alignas(64) id_counter { std::uint64_t next = 0; };
    std::vector<id_counter> message_ids_;   // one per worker, touched only by that worker
    std::vector<id_counter> consumer_ids_;
    std::vector<connection_table> connections_;   // one per worker
    std::vector<subscription_record> recovered_subs_;

    // ---- sched (core/kernel/schedule.cpp, virtual.cpp) ----
    // Posts `msg` to its destination's shard (a composite destination: to each part's), from
    // any thread; `reply` runs on the thread that completes it.
    void route(message_ptr msg, std::function<void(publish_status)> reply);
    // Whether `m` is for the scheduler (its AMQ_SCHEDULED_* properties, scheduler_support).
    bool scheduled(const message& m) const noexcept;
    // Holds `msg` as a new job (stored first when persistent); reply once accepted.
    void schedule(message_ptr msg, std::function<void(publish_status)> reply);
    void fire(std::vector<scheduler::job>& jobs);
    void load_jobs(std::vector<scheduler::job>& jobs);   // the bodies of those without one, from the store
    void fire_one(scheduler::job j);
    void recover_scheduled(std::vector<recovered_message> jobs);
    void subscribe_registered(consumer_id id, const destination& dest, subscribe_options opt,
                              std::weak_ptr<consumer_sink> sink, std::function<void()> done);
    // Virtual topics: the topic whose consumer queue `queue` is (virtual_topic_* settings).
    std::optional<std::string> virtual_topic_of(std::string_view queue) const;
    // Registers consumer queue `queue` of virtual topic `topic` on every shard (and in the
    // store, as a subscription record named "$virtual:<queue>"), then `done` on this worker.
    void register_virtual(const std::string& queue, const std::string& topic, std::function<void()> done);
    bool recover_virtual(const subscription_record& r);
    // A transaction's sends: composite ones split, scheduled ones taken out into `later`.
    void expand_sends(std::vector<message_ptr>& sends, std::vector<message_ptr>& later) const;
    std::mutex virtual_mutex_;
    std::unordered_set<std::string> virtual_queues_;   // registered consumer queues
    message_id next_scheduler_id() noexcept;
    std::atomic<std::uint64_t> scheduler_ids_{0};
    // What the completions of the scheduler's store work reach the scheduler and the store
    // through (schedule.cpp): they may run after stop(), even after the broker is gone.
    struct schedule_link;
    std::shared_ptr<schedule_link> sched_link_;
    void start_scheduler();   // the constructor's: scheduler_ and sched_link_
    // Last member: destroyed first, so its thread stops before anything it fires into goes.
    std::unique_ptr<scheduler> scheduler_;
};

}  // namespace sb::core
