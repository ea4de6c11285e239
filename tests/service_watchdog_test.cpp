// The service watchdog (runtime/service_watchdog.h): what systemd's
// environment asks for, and WATCHDOG=1 on a notify socket of the test's own
// only while no actor is silent, with one log line when the pings stop and
// one when they resume. The whole server under a watchdog, with a real hung
// actor, is CTest service.notify (tests/service/test_notify.py).
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>

#include "runtime/service_watchdog.h"
#include "test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;
using Clock = ServiceWatchdog::Clock;

// A logger writing to `out`.
Logger logger_to(std::ostringstream& out) {
  return std::make_shared<spdlog::logger>("serve", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
}

// Plays systemd's part: a datagram socket that $NOTIFY_SOCKET names.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = (test::scratch_dir("watchdog") / "notify").string();
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, sizeof a.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
  }
  // Every datagram received so far, joined by "|".
  std::string received() {
    std::string all;
    char buf[256];
    for (ssize_t n; (n = recv(fd_, buf, sizeof buf, 0)) > 0;) {
      if (!all.empty()) all += '|';
      all.append(buf, size_t(n));
    }
    return all;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Sets (or, for nullptr, unsets) an environment variable for one test.
struct Env {
  std::string name;
  Env(const char* n, const char* v) : name(n) { v ? setenv(n, v, 1) : unsetenv(n); }
  ~Env() { unsetenv(name.c_str()); }
};

TEST(ServiceWatchdog, TakesItsTimeoutFromTheEnvironmentForThisProcessOnly) {
  std::ostringstream log;
  {
    Env usec("WATCHDOG_USEC", nullptr), pid("WATCHDOG_PID", nullptr);
    EXPECT_FALSE(ServiceWatchdog::from_environment(logger_to(log), Clock::now()).has_value());
  }
  {
    Env usec("WATCHDOG_USEC", "1000000"), pid("WATCHDOG_PID", nullptr);
    auto w = ServiceWatchdog::from_environment(logger_to(log), Clock::now());
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->timeout(), 1s);
    EXPECT_EQ(w->period(), 500ms);
    EXPECT_NE(log.str().find("watchdog: WATCHDOG=1 every 0.5 s while every actor answers (timeout 1 s)"),
              std::string::npos)
        << log.str();
  }
  {
    const std::string me = std::to_string(getpid());
    Env usec("WATCHDOG_USEC", "30000000"), pid("WATCHDOG_PID", me.c_str());
    auto w = ServiceWatchdog::from_environment(logger_to(log), Clock::now());
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->timeout(), 30s);
  }
  {
    const std::string other = std::to_string(getpid() + 1);  // the watchdog of another process
    Env usec("WATCHDOG_USEC", "1000000"), pid("WATCHDOG_PID", other.c_str());
    EXPECT_FALSE(ServiceWatchdog::from_environment(logger_to(log), Clock::now()).has_value());
  }
  {
    Env usec("WATCHDOG_USEC", "soon"), pid("WATCHDOG_PID", nullptr);
    EXPECT_FALSE(ServiceWatchdog::from_environment(logger_to(log), Clock::now()).has_value());
    EXPECT_NE(log.str().find("no watchdog: $WATCHDOG_USEC / $WATCHDOG_PID could not be read"), std::string::npos)
        << log.str();
  }
}

TEST(ServiceWatchdog, PingsOnlyWhileNoActorIsSilentAndSaysWhichOneStoppedThem) {
  NotifySocket systemd;
  std::ostringstream log;
  const Clock::time_point t0 = Clock::now();
  ServiceWatchdog w(1s, logger_to(log), t0);
  EXPECT_EQ(w.due(), t0);

  EXPECT_TRUE(w.tick({}, t0));
  EXPECT_EQ(systemd.received(), "WATCHDOG=1");
  EXPECT_EQ(w.due(), t0 + 500ms);
  EXPECT_EQ(log.str(), "");

  EXPECT_FALSE(w.tick({"generator"}, t0 + 500ms));
  EXPECT_EQ(systemd.received(), "");
  EXPECT_EQ(w.due(), t0 + 1000ms);
  EXPECT_NE(log.str().find("actor generator has not come back to its loop for over 0.5 s (stuck in one iteration); "
                           "watchdog pings stopped"),
            std::string::npos)
      << log.str();

  // Still silent: no ping, no second line. Another one too: a line naming both.
  const size_t lines = log.str().size();
  EXPECT_FALSE(w.tick({"generator"}, t0 + 1000ms));
  EXPECT_EQ(log.str().size(), lines);
  EXPECT_FALSE(w.tick({"generator", "verifier"}, t0 + 1500ms));
  EXPECT_NE(log.str().find("actors generator, verifier have not come back to their loop"), std::string::npos)
      << log.str();
  EXPECT_EQ(systemd.received(), "");

  // It answered: the pings resume, and the log says so.
  EXPECT_TRUE(w.tick({}, t0 + 2000ms));
  EXPECT_EQ(systemd.received(), "WATCHDOG=1");
  EXPECT_NE(log.str().find("watchdog pings resumed: every actor answers again"), std::string::npos) << log.str();
  EXPECT_TRUE(w.tick({}, t0 + 2600ms));
  EXPECT_EQ(w.due(), t0 + 3100ms);  // from the tick, not from the missed due time
  EXPECT_EQ(systemd.received(), "WATCHDOG=1");
}

}  // namespace
}  // namespace flashtts
