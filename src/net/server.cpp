// The listener, the I/O threads, signals, periodic tasks and shutdown.
//
// Shutdown runs on the listener's strand: stop accepting, stop signals and
// periodic tasks, ask every connection to finish (WebSockets close with 1001
// after a bye, HTTP connections close after their response in flight). The
// io_context stops when the connection table empties, or when the shutdown
// timeout has passed and the stragglers have been dropped.
#include "net/server.hpp"

#include <sys/resource.h>
#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "net/server_state.hpp"
#include "net/sessions.hpp"

namespace parley::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace detail {

ServerState::ServerState(ServerOptions opts, Service& svc, Registry& metrics)
    : options(std::move(opts)),
      service(svc),
      http_open(metrics.GetGauge("parley_connections_open", "Open client connections",
                                 {{"kind", "http"}})),
      ws_open(
          metrics.GetGauge("parley_connections_open", "Open client connections", {{"kind", "ws"}})),
      exempt_(AddressSet::Parse(options.trusted_proxies + "," + options.connection_caps_exempt)),
      refused_address_(metrics.GetCounter("parley_connections_refused_total",
                                          "Sockets closed at accept by a connection cap",
                                          {{"reason", "address"}})),
      refused_unauthenticated_(metrics.GetCounter("parley_connections_refused_total",
                                                  "Sockets closed at accept by a connection cap",
                                                  {{"reason", "unauthenticated"}})),
      refused_global_(metrics.GetCounter("parley_connections_refused_total",
                                         "Sockets closed at accept by a connection cap",
                                         {{"reason", "global"}})),
      registry_(metrics) {}

std::shared_ptr<ConnectionSlot> ServerState::Admit(const std::string& address) {
  const bool per_address =
      !exempt_.Contains(address) &&
      (options.max_connections_per_address > 0 || options.max_unauthenticated_per_address > 0);
  std::string key = per_address ? AddressKey(address) : std::string();
  {
    std::lock_guard lock(caps_mu_);
    if (connection_cap_ > 0 && open_total_ >= connection_cap_) {
      refused_global_.Inc();
      return nullptr;
    }
    if (per_address) {
      AddressCount& c = by_address_[key];
      const auto& o = options;
      if (o.max_connections_per_address > 0 && c.open >= o.max_connections_per_address) {
        refused_address_.Inc();
        if (c.open == 0) by_address_.erase(key);
        return nullptr;
      }
      if (o.max_unauthenticated_per_address > 0 &&
          c.unauthenticated >= o.max_unauthenticated_per_address) {
        refused_unauthenticated_.Inc();
        if (c.open == 0) by_address_.erase(key);
        return nullptr;
      }
      ++c.open;
      ++c.unauthenticated;
    }
    ++open_total_;
  }
  return std::make_shared<ConnectionSlot>(*this, std::move(key), per_address);
}

void ServerState::Release(const std::string& key, bool per_address, bool authenticated) {
  std::lock_guard lock(caps_mu_);
  --open_total_;
  if (!per_address) return;
  auto it = by_address_.find(key);
  if (it == by_address_.end()) return;
  --it->second.open;
  if (!authenticated) --it->second.unauthenticated;
  if (it->second.open == 0) by_address_.erase(it);
}

void ServerState::ReleaseUnauthenticated(const std::string& key, bool per_address) {
  if (!per_address) return;
  std::lock_guard lock(caps_mu_);
  auto it = by_address_.find(key);
  if (it != by_address_.end() && it->second.unauthenticated > 0) --it->second.unauthenticated;
}

ConnectionSlot::~ConnectionSlot() { state_.Release(key_, per_address_, authenticated_.load()); }

void ConnectionSlot::Authenticated() {
  if (authenticated_.exchange(true)) return;
  state_.ReleaseUnauthenticated(key_, per_address_);
}

std::uint64_t ServerState::Register(std::weak_ptr<Connection> connection) {
  std::lock_guard lock(mu_);
  const std::uint64_t key = next_key_++;
  connections_.emplace(key, std::move(connection));
  return key;
}

void ServerState::Unregister(std::uint64_t key) {
  bool drained = false;
  {
    std::lock_guard lock(mu_);
    connections_.erase(key);
    drained = connections_.empty();
  }
  if (drained && shutting_down() && !destroying()) ioc.stop();
}

std::vector<std::shared_ptr<Connection>> ServerState::Snapshot() {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(mu_);
  out.reserve(connections_.size());
  for (auto& [key, weak] : connections_) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

std::size_t ServerState::ConnectionCount() {
  std::lock_guard lock(mu_);
  return connections_.size();
}

Counter& ServerState::Responses(unsigned status) {
  if (status >= responses_.size()) status = 0;
  Counter* c = responses_[status].load(std::memory_order_acquire);
  if (c == nullptr) {
    // Two threads may race here; the registry hands both the same counter.
    c = &registry_.GetCounter("parley_http_responses_total", "HTTP responses written, by status",
                              {{"status", status == 0 ? "other" : std::to_string(status)}});
    responses_[status].store(c, std::memory_order_release);
  }
  return *c;
}

std::string PeerAddress(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

}  // namespace detail

namespace {

// After the shutdown timeout, stragglers are closed; this is how long they
// get to notice before the io_context is stopped regardless.
constexpr std::chrono::seconds kForceCloseGrace{1};
// Accept failures such as EMFILE would otherwise spin the listener.
constexpr std::chrono::milliseconds kAcceptRetry{100};

asio::ip::address ParseHost(std::string host) {
  if (host == "localhost") return asio::ip::address_v4::loopback();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("invalid listen host \"" + host + "\": expected an IP literal");
  return address;
}

// A periodic task: a timer on its own strand, re-armed after each run so
// runs never overlap.
struct EveryLoop : std::enable_shared_from_this<EveryLoop> {
  EveryLoop(asio::io_context& ioc, std::chrono::milliseconds p, std::function<void()> f)
      : timer(asio::make_strand(ioc)), period(p), fn(std::move(f)) {}

  void Arm() {
    timer.expires_after(period);
    timer.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->stopped) return;
      try {
        self->fn();
      } catch (const std::exception& e) {
        PLOG_ERROR("periodic task threw", "error={}", LogQuote(e.what()));
      }
      self->Arm();
    });
  }

  void Stop() {
    asio::post(timer.get_executor(), [self = shared_from_this()] {
      self->stopped = true;
      self->timer.cancel();
    });
  }

  asio::steady_timer timer;
  std::chrono::milliseconds period;
  std::function<void()> fn;
  bool stopped = false;  // on the timer's strand
};

}  // namespace

struct Server::Impl final : detail::ServerState {
  Impl(ServerOptions opts, Service& svc, Registry& metrics)
      : ServerState(std::move(opts), svc, metrics),
        strand(asio::make_strand(ioc)),
        acceptor(strand),
        signals(strand),
        accept_retry(strand),
        shutdown_timer(strand) {}

  ~Impl() {
    destroying_ = true;
    // Sessions waiting on core for a response keep themselves alive; let
    // them go so that the io_context's destructor can free them.
    for (auto& c : Snapshot()) c->ReleaseSelf();
  }

  void DoAccept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
      OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(error_code ec, tcp::socket socket) {
    if (shutting_down() || !acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      PLOG_WARN("accept failed", "error={}", LogQuote(ec.message()));
      accept_retry.expires_after(kAcceptRetry);
      accept_retry.async_wait([this](error_code wait_ec) {
        if (!wait_ec && !shutting_down()) DoAccept();
      });
      return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    detail::StartHttpSession(*this, std::move(socket));
    DoAccept();
  }

  void WaitSignal() {
    signals.async_wait([this](error_code ec, int signo) {
      if (ec) return;
      PLOG_INFO("signal received, shutting down", "signal={}", signo);
      BeginShutdown();
    });
  }

  void BeginShutdown() {
    if (shutting_down_.exchange(true)) return;
    asio::post(strand, [this] { OnShutdown(); });
  }

  // On `strand`.
  void OnShutdown() {
    error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    signals.cancel(ignored);
    // Without our handlers, a second SIGINT kills a shutdown that hangs.
    signals.clear(ignored);
    {
      std::lock_guard lock(every_mu);
      for (auto& e : everies) e->Stop();
      everies.clear();
    }
    for (auto& c : Snapshot()) c->BeginShutdown();
    if (ConnectionCount() == 0) {
      ioc.stop();
      return;
    }
    shutdown_timer.expires_after(options.shutdown_timeout);
    shutdown_timer.async_wait([this](error_code ec) {
      if (ec) return;
      PLOG_WARN("shutdown timeout, dropping connections", "open={}", ConnectionCount());
      for (auto& c : Snapshot()) c->ForceClose();
      shutdown_timer.expires_after(kForceCloseGrace);
      shutdown_timer.async_wait([this](error_code) { ioc.stop(); });
    });
  }

  void RunLoop() {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        // Handlers catch what they call; this is the last line of defence
        // so that one bad handler does not take an I/O thread down.
        PLOG_ERROR("I/O thread caught an exception", "error={}", LogQuote(e.what()));
      } catch (...) {
        PLOG_ERROR("I/O thread caught an exception", "error={}", "unknown");
      }
    }
  }

  asio::strand<asio::io_context::executor_type> strand;  // listener, signals, shutdown
  tcp::acceptor acceptor;
  asio::signal_set signals;
  asio::steady_timer accept_retry;
  asio::steady_timer shutdown_timer;
  std::mutex every_mu;
  std::vector<std::shared_ptr<EveryLoop>> everies;
};

Server::Server(ServerOptions options, Service& service, Registry& metrics)
    : impl_(std::make_shared<Impl>(std::move(options), service, metrics)) {}

Server::~Server() = default;

std::string Server::Listen() {
  Impl& s = *impl_;
  const ServerOptions& o = s.options;
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    throw std::runtime_error("TLS needs both a certificate file and a key file");
  }
  if (!o.tls_cert_file.empty()) {
    namespace ssl = asio::ssl;
    s.ssl.emplace(ssl::context::tls_server);
    s.ssl->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
    try {
      s.ssl->use_certificate_chain_file(o.tls_cert_file);
      s.ssl->use_private_key_file(o.tls_key_file, ssl::context::pem);
    } catch (const boost::system::system_error& e) {
      s.ssl.reset();
      throw std::runtime_error("cannot load TLS certificate " + o.tls_cert_file + " or key " +
                               o.tls_key_file + ": " + e.what());
    }
  }

  // The global connection cap: what is configured, and never more than the
  // open-files limit minus the reserve for the store, media and logs.
  {
    std::size_t cap = o.max_connections;
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      const auto limit = static_cast<std::size_t>(rl.rlim_cur);
      const std::size_t by_fds = limit > o.fd_reserve ? limit - o.fd_reserve : limit / 2;
      if (limit <= o.fd_reserve) {
        PLOG_WARN("open-files limit is below fd_reserve; half of it goes to connections",
                  "limit={} fd_reserve={}", limit, o.fd_reserve);
      }
      cap = cap == 0 ? by_fds : std::min(cap, by_fds);
    }
    s.SetConnectionCap(cap);
    PLOG_INFO("connection caps", "max_connections={} per_address={} unauthenticated_per_address={}",
              cap, o.max_connections_per_address, o.max_unauthenticated_per_address);
  }

  const tcp::endpoint endpoint(ParseHost(o.host), o.port);
  const std::string wanted = o.host + ":" + std::to_string(o.port);
  error_code ec;
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    s.acceptor.close(ignored);
    throw std::runtime_error("cannot listen on " + wanted + ": " + ec.message());
  }
  const tcp::endpoint bound = s.acceptor.local_endpoint(ec);
  if (ec) throw std::runtime_error("cannot listen on " + wanted + ": " + ec.message());
  s.DoAccept();

  const std::string address = bound.address().to_string();
  const std::string port = std::to_string(bound.port());
  return bound.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

bool Server::tls() const { return impl_->ssl.has_value(); }

void Server::Run() {
  Impl& s = *impl_;
  if (!s.shutting_down()) {
    // No I/O thread runs yet, so touching the signal set here is safe.
    error_code ignored;
    s.signals.add(SIGINT, ignored);
    s.signals.add(SIGTERM, ignored);
    s.WaitSignal();
  }
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < s.options.threads; ++i) {
    threads.emplace_back([&s] { s.RunLoop(); });
  }
  s.RunLoop();
  for (auto& t : threads) t.join();
}

void Server::Shutdown() { impl_->BeginShutdown(); }

void Server::Post(std::function<void()> fn) {
  if (impl_->destroying()) return;
  asio::post(impl_->ioc, [fn = std::move(fn)] {
    try {
      fn();
    } catch (const std::exception& e) {
      PLOG_ERROR("posted task threw", "error={}", LogQuote(e.what()));
    }
  });
}

void Server::Every(std::chrono::milliseconds period, std::function<void()> fn) {
  Impl& s = *impl_;
  // A zero period would spin an I/O thread.
  period = std::max(period, std::chrono::milliseconds(1));
  auto loop = std::make_shared<EveryLoop>(s.ioc, period, std::move(fn));
  std::lock_guard lock(s.every_mu);
  // Checked under the lock that OnShutdown takes to stop the loops.
  if (s.shutting_down()) return;
  s.everies.push_back(loop);
  loop->Arm();
}

}  // namespace parley::net
