#include "runtime/base/listen.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace flashtts {

namespace {

constexpr const char* kIpc = "ipc://";
constexpr const char* kTcp = "tcp://";

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// The closing descriptor of a probe socket.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status check_ipc(const std::string& ep, const std::string& path) {
  if (path.empty() || path[0] == '@') return Status::success();  // abstract: bind refuses duplicates
  sockaddr_un a{};
  if (path.size() >= sizeof(a.sun_path))
    return make_error("cannot listen on '" + ep + "': the path is longer than " +
                      std::to_string(sizeof(a.sun_path) - 1) + " bytes");
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    auto folder = std::filesystem::path(path).parent_path();
    if (!folder.empty() && !std::filesystem::is_directory(folder))
      return make_error("cannot listen on '" + ep + "': the folder " + folder.string() + " does not exist");
    return Status::success();
  }
  if (!S_ISSOCK(st.st_mode))
    return make_error("cannot listen on '" + ep + "': " + path + " exists and is not a socket; it was left as it is");
  Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
  if (s.fd < 0) return make_error("cannot listen on '" + ep + "': socket(): " + std::strerror(errno));
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size());
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0)
    return make_error("cannot listen on '" + ep + "': another process is serving it (a flashtts server already "
                      "running?); stop that one or choose another endpoint");
  if (errno == ECONNREFUSED) return Status::success();  // left by a process that died: bind replaces it
  return make_error("cannot listen on '" + ep + "': cannot tell whether another process serves it (" +
                    std::strerror(errno) + ")");
}

Status check_tcp(const std::string& ep, const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return Status::success();  // malformed: bind() says so
  std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (port == "*" || port == "0" || host.find(';') != std::string::npos) return Status::success();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  // An interface name (tcp://eth0:7797) does not resolve: bind() checks it.
  if (::getaddrinfo(host == "*" ? nullptr : host.c_str(), port.c_str(), &hints, &res) != 0) return Status::success();
  Status out;
  Fd s{::socket(res->ai_family, res->ai_socktype, res->ai_protocol)};
  int one = 1;
  if (s.fd >= 0 && ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
      ::bind(s.fd, res->ai_addr, res->ai_addrlen) != 0 && errno == EADDRINUSE)
    out = make_error("cannot listen on '" + ep + "': another process is serving it (the port is in use; a "
                     "flashtts server already running?); stop that one or choose another endpoint");
  ::freeaddrinfo(res);
  return out;
}

}  // namespace

Status check_can_listen(const std::string& ep) {
  if (starts_with(ep, kIpc)) return check_ipc(ep, ep.substr(std::strlen(kIpc)));
  if (starts_with(ep, kTcp)) return check_tcp(ep, ep.substr(std::strlen(kTcp)));
  return Status::success();
}

Listening& Listening::operator=(Listening&& o) noexcept {
  if (this != &o) {
    release();
    endpoint_ = std::move(o.endpoint_);
    file_ = std::move(o.file_);
    dev_ = o.dev_, ino_ = o.ino_;
    o.file_.clear();
  }
  return *this;
}

Listening::~Listening() { release(); }

void Listening::release() {
  if (file_.empty()) return;
  struct stat st{};
  if (::lstat(file_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(file_.c_str());
  file_.clear();
}

Expected<Listening> listen(zmq::socket_t& s, const std::string& ep) {
  FLASHTTS_TRY(check_can_listen(ep));
  try {
    s.bind(ep);
  } catch (const zmq::error_t& e) {
    return make_error("cannot listen on '" + ep + "': " + e.what());
  }
  Listening l;
  l.endpoint_ = ep;
  if (starts_with(ep, kIpc) && ep.size() > std::strlen(kIpc) && ep[std::strlen(kIpc)] != '@') {
    std::string path = ep.substr(std::strlen(kIpc));
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      l.file_ = path;
      l.dev_ = st.st_dev, l.ino_ = st.st_ino;
    }
  }
  return l;
}

}  // namespace flashtts
