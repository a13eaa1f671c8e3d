// gateway/protocols/mqtt_kernel.cpp — MQTT served by the kernel: the session settings from the
// `mqtt` and `broker` sections, the registry of persistent sessions (restored from the store's
// durable subscriptions) with the sweeper that ends expired ones, and the sessions' factory.
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "adapters/mqtt/session.hpp"
#include "core/broker.hpp"
#include "gateway/engine_driver.hpp"
#include "gateway/kernel_adapters.hpp"
#include "gateway/worker.hpp"

namespace sb::gateway {

namespace asio = boost::asio;

namespace {

mqtt::settings settings_of(const config& cfg) {
    mqtt::settings s;
    s.packet_limits.max_packet_size = cfg.mqtt.max_packet_size;
    s.receive_maximum = cfg.mqtt.receive_maximum;
    s.topic_alias_maximum = cfg.mqtt.topic_alias_maximum;
    s.max_keepalive_s = cfg.mqtt.max_keepalive_s;
    s.connect_timeout_ms = cfg.mqtt.connect_timeout_ms;
    s.max_unconfirmed_sends = s.receive_maximum;   // reading stops there (see mqtt::settings)
    s.max_queued_messages = cfg.mqtt.max_queued_messages;
    s.max_session_expiry_s = cfg.mqtt.max_session_expiry_s;
    s.retain_available = cfg.mqtt.retain_available;
    s.default_prefetch = cfg.broker.default_prefetch;
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.broker_name = cfg.broker.name;
    return s;
}

// Ends expired persistent MQTT sessions once a second, on the housekeeping worker (kernel
// calls need a worker).
class session_sweeper {
public:
    session_sweeper(worker& w, std::shared_ptr<mqtt::registry> reg) : timer_(w.context()), reg_(std::move(reg)) {}
    void start() {
        timer_.expires_after(std::chrono::seconds(1));
        timer_.async_wait([this](net::error_code ec) {
            if (ec) return;
            mqtt::sweep_expired(*reg_);
            start();
        });
    }
    void stop() { asio::post(timer_.get_executor(), [this] { timer_.cancel(); }); }

private:
    asio::steady_timer timer_;
    std::shared_ptr<mqtt::registry> reg_;
};

class mqtt_kernel final : public kernel_adapter {
public:
    explicit mqtt_kernel(const kernel_env& env)
        : settings_(std::make_shared<const mqtt::settings>(settings_of(env.cfg))), broker_(env.broker),
          auth_(env.auth), registry_(mqtt::make_registry(env.broker)), sweeper_(env.housekeeping, registry_),
          housekeeping_(env.housekeeping) {
        mqtt::restore_sessions(*registry_, env.broker.recovered_subscriptions());
    }

    session_factory sessions() const override {
        return [s = settings_, &broker = broker_, &auth = auth_, reg = registry_](std::unique_ptr<net::transport> t,
                                                                                 std::uint64_t conn) {
            return drive(mqtt::make_session(s, broker, auth, reg, conn), std::move(t));
        };
    }

    void start() override { asio::post(housekeeping_.context(), [this] { sweeper_.start(); }); }
    void stop() override { sweeper_.stop(); }

private:
    std::shared_ptr<const mqtt::settings> settings_;
    core::broker& broker_;
    core::auth_pool& auth_;
    std::shared_ptr<mqtt::registry> registry_;
    session_sweeper sweeper_;
    worker& housekeeping_;
};

}  // namespace

std::unique_ptr<kernel_adapter> make_mqtt_kernel(const kernel_env& env) { return std::make_unique<mqtt_kernel>(env); }

}  // namespace sb::gateway
