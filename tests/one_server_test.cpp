// One server per endpoint (issue 19, item 2): a second `flashtts serve` on a
// served endpoint stops before it loads a model and leaves the first one
// reachable; socket files go with a clean exit; a socket file left by a
// killed server does not stop the next one; a file that is not a socket is
// never replaced.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/client.h"
#include "runtime/base/listen.h"
#include "tests/test_support.h"

namespace flashtts {
namespace {

using namespace std::chrono_literals;

std::filesystem::path write_config(const std::filesystem::path& dir, const std::vector<std::string>& clients) {
  auto m = test::tiny_models();
  std::ofstream f(dir / "serve.toml");
  f << "log_level = \"info\"\n"
    << "[models]\npolicy = \"" << (m / "policy").string() << "\"\nprm = \"" << (m / "prm").string() << "\"\n"
    << "[memory]\nbudget_mb = 64\n[engine]\ngenerator_threads = 1\nverifier_threads = 1\n"
    << "[endpoints]\nclients = [";
  for (size_t i = 0; i < clients.size(); ++i) f << (i ? ", " : "") << "\"" << clients[i] << "\"";
  f << "]\n";
  return dir / "serve.toml";
}

bool pong(const std::string& ep) {
  zmq::context_t ctx;
  auto c = Client::connect(ctx, ep);
  return c.ok() && c->call("ping", msg::MapWriter(), 5s).ok();
}

// Server 1 serves `clients`; server 2 on the same configuration must stop
// with an error naming the endpoint, and server 1 must still answer.
void second_server_is_refused(const std::vector<std::string>& clients, const std::string& refused) {
  auto dir = test::scratch_dir("one-server");
  auto cfg = write_config(dir, clients);
  test::Child first({"serve", "--config", cfg.string()}, dir / "first.log");
  ASSERT_TRUE(test::wait_for_text(dir / "first.log", "listening on " + clients.back(), 60s))
      << test::read_file(dir / "first.log");

  test::Child second({"serve", "--config", cfg.string()}, dir / "second.log");
  EXPECT_EQ(second.wait(10s), 1) << test::read_file(dir / "second.log");
  std::string out = test::read_file(dir / "second.log");
  EXPECT_NE(out.find("cannot listen on '" + refused + "'"), std::string::npos) << out;
  EXPECT_NE(out.find("another process is serving it"), std::string::npos) << out;
  EXPECT_EQ(out.find("weights"), std::string::npos) << "the second server loaded a model:\n" << out;

  for (const auto& ep : clients) EXPECT_TRUE(pong(ep)) << "the first server no longer answers at " << ep;
  EXPECT_EQ(first.stop(SIGINT, 10s), 0) << test::read_file(dir / "first.log");
  for (const auto& ep : clients)
    if (ep.rfind("ipc://", 0) == 0) EXPECT_FALSE(std::filesystem::exists(ep.substr(6))) << ep << " was left behind";
}

TEST(OneServer, ASecondServerOnIpcAndTcpIsRefusedBeforeItLoadsModels) {
  auto dir = test::scratch_dir("ep");
  second_server_is_refused(
      {"ipc://" + (dir / "client").string(), "tcp://127.0.0.1:" + std::to_string(test::free_tcp_port())},
      "ipc://" + (dir / "client").string());
}

TEST(OneServer, ASecondServerOnAnIpcOnlyEndpointIsRefused) {
  auto dir = test::scratch_dir("ep");
  second_server_is_refused({"ipc://" + (dir / "client").string()}, "ipc://" + (dir / "client").string());
}

TEST(OneServer, ASecondServerOnATcpOnlyEndpointIsRefused) {
  std::string ep = "tcp://127.0.0.1:" + std::to_string(test::free_tcp_port());
  second_server_is_refused({ep}, ep);
}

TEST(OneServer, ASocketFileLeftByAKilledServerDoesNotStopTheNext) {
  auto dir = test::scratch_dir("stale");
  std::string path = (dir / "client").string();
  {  // a socket file nobody listens on, as a kill -9 leaves it
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    close(s);
  }
  ASSERT_TRUE(std::filesystem::is_socket(path));
  EXPECT_TRUE(check_can_listen("ipc://" + path).ok());
  auto cfg = write_config(dir, {"ipc://" + path});
  test::Child server({"serve", "--config", cfg.string()}, dir / "serve.log");
  ASSERT_TRUE(test::wait_for_text(dir / "serve.log", "listening on ipc://", 60s)) << test::read_file(dir / "serve.log");
  EXPECT_TRUE(pong("ipc://" + path));
  EXPECT_EQ(server.stop(SIGTERM, 10s), 0);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(OneServer, AFileThatIsNotASocketIsNeverReplaced) {
  auto dir = test::scratch_dir("notsock");
  std::ofstream(dir / "data.txt") << "keep me";
  auto st = check_can_listen("ipc://" + (dir / "data.txt").string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("is not a socket"), std::string::npos) << st.message();
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::router);
  EXPECT_FALSE(listen(s, "ipc://" + (dir / "data.txt").string()).ok());
  EXPECT_EQ(test::read_file(dir / "data.txt"), "keep me");
  auto missing = check_can_listen("ipc://" + (dir / "no-such-folder" / "s").string());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("does not exist"), std::string::npos) << missing.message();
}

TEST(OneServer, AnIpcFileIsRemovedOnlyWhileItIsStillOurs) {
  auto dir = test::scratch_dir("ours");
  std::string ep = "ipc://" + (dir / "s").string();
  zmq::context_t ctx;
  zmq::socket_t a(ctx, zmq::socket_type::pull);
  a.set(zmq::sockopt::linger, 0);
  {
    auto l = listen(a, ep);
    ASSERT_TRUE(l.ok()) << l.error().message;
    EXPECT_FALSE(check_can_listen(ep).ok());  // we serve it now
    // Another file takes the path (as a later server's bind would).
    std::filesystem::remove(dir / "s");
    std::ofstream(dir / "s") << "someone else's";
  }
  EXPECT_EQ(test::read_file(dir / "s"), "someone else's");
}

}  // namespace
}  // namespace flashtts
