// SPDX-License-Identifier: BSL-1.0
#include "support/postgres_server.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace qorb::test {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The server binaries: $QORB_PG_BINDIR, else `pg_config --bindir`, else
// the newest /usr/lib/postgresql/*/bin.
const std::string& bindir() {
  static const std::string dir = [] {
    if (const char* env = std::getenv("QORB_PG_BINDIR")) return std::string(env);
    std::string out;
    if (run_command({"pg_config", "--bindir"}, &out, 10s) == 0 &&
        fs::exists(trim(out) + "/initdb")) {
      return trim(out);
    }
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
      if (fs::exists(entry.path() / "bin" / "initdb")) found.push_back(entry.path() / "bin");
    }
    if (found.empty()) {
      throw std::runtime_error(
          "no PostgreSQL server binaries (initdb): install the postgresql package or set "
          "QORB_PG_BINDIR");
    }
    std::sort(found.begin(), found.end());
    return found.back();
  }();
  return dir;
}

bool is_root() { return ::geteuid() == 0; }

// initdb and postgres refuse to run as root: run them as `postgres`.
// `parent_death_signal` reaches the process when the thread that started it
// dies, so a crashed test leaves no server. For postgres it is TERM (smart
// shutdown, quick once the dead test's sessions are gone), which a shell
// never sets to "ignored" for background jobs as it does INT.
std::vector<std::string> as_postgres(std::vector<std::string> argv,
                                     const std::string& parent_death_signal = {}) {
  std::vector<std::string> out{"setpriv"};
  if (is_root()) {
    out.insert(out.end(), {"--reuid=postgres", "--regid=postgres", "--init-groups"});
  }
  if (!parent_death_signal.empty()) out.insert(out.end(), {"--pdeathsig", parent_death_signal});
  out.emplace_back("--");
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

void give_to_postgres(const std::string& path) {
  if (!is_root()) return;
  const passwd* pw = ::getpwnam("postgres");
  if (!pw) throw std::runtime_error("running as root, but there is no 'postgres' user");
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::system_error(errno, std::generic_category(), "chown " + path);
  }
}

void run_checked(const std::vector<std::string>& argv, const std::string& what) {
  std::string output;
  const int rc = run_command(argv, &output, 120s);
  if (rc != 0) {
    throw std::runtime_error(what + " failed (exit " + std::to_string(rc) + "): " + output);
  }
}

// Runs initdb into `data` (whose parent the postgres user can write).
void initdb(const std::string& work) {
  give_to_postgres(work);
  const std::string pwfile = work + "/pwfile";
  std::ofstream(pwfile) << postgres_server::password << "\n";
  give_to_postgres(pwfile);
  run_checked(as_postgres({bindir() + "/initdb", "-D", work + "/data", "-U", postgres_server::user,
                           "-E", "UTF8", "--no-locale", "--no-sync", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "--pwfile=" + pwfile}),
              "initdb");
}

// A data directory made by initdb, to be copied for each server. Cached in
// QORB_PG_CACHE_DIR (a build directory) under a file lock, so that every
// test process of a build shares one initdb; else made once per process.
const std::string& template_cluster() {
  static const std::string data = [] {
#ifdef QORB_PG_CACHE_DIR
    const std::string cache = QORB_PG_CACHE_DIR;
    fs::create_directories(fs::path(cache).parent_path());
    const std::string lock_path = cache + ".lock";
    const int lock = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lock < 0) throw std::system_error(errno, std::generic_category(), "open " + lock_path);
    // The holder finishes initdb (bounded by run_command) or dies, which
    // releases the lock.
    ::flock(lock, LOCK_EX);
    struct unlock {
      int fd;
      ~unlock() { ::close(fd); }
    } unlock_on_exit{lock};
    const std::string marker = cache + "/ready";
    if (read_file(marker) != bindir() || !fs::exists(cache + "/data/PG_VERSION")) {
      fs::remove_all(cache);
      temp_dir work("qorb-initdb");
      initdb(work.path());
      fs::create_directories(cache);
      // As root, cp -a keeps the postgres user's ownership and modes.
      run_checked({"cp", "-a", work.path() + "/data", cache + "/data"}, "copying the cluster");
      std::ofstream(marker) << bindir();
    }
    return cache + "/data";
#else
    static const auto process_dir = std::make_unique<temp_dir>("qorb-initdb");
    initdb(process_dir->path());
    return process_dir->path() + "/data";
#endif
  }();
  return data;
}

std::string conninfo(unsigned short port, bool with_password) {
  std::string info = "hostaddr=127.0.0.1 port=" + std::to_string(port) +
                     " dbname=postgres user=" + postgres_server::user + " connect_timeout=5";
  if (with_password) info += std::string(" password=") + postgres_server::password;
  return info;
}

}  // namespace

postgres_server::postgres_server() : dir_("qorb-pg") {
  give_to_postgres(dir_.path());
  run_checked({"cp", "-a", template_cluster(), dir_.path() + "/data"}, "copying the cluster");
  // Another process may take the free port before the server binds it.
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      if (attempt == 4) throw;
    }
  }
}

postgres_server::~postgres_server() { stop(); }

boost::asio::ip::tcp::endpoint postgres_server::endpoint() const {
  return {boost::asio::ip::make_address_v4("127.0.0.1"), port_};
}

void postgres_server::start() {
  if (process_.running()) return;
  std::vector<std::string> argv{"sh", "-c", "exec \"$@\" >>\"$0\" 2>&1", log_path()};
  for (auto& arg :
       as_postgres({bindir() + "/postgres", "-D", dir_.path() + "/data", "-p",
                    std::to_string(port_), "-k", dir_.path(), "-c", "listen_addresses=127.0.0.1",
                    "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=60"},
                   "TERM")) {
    argv.push_back(std::move(arg));
  }
  process_ = child_process(argv);
  const std::string info = conninfo(port_, false);
  const bool ready =
      wait_until([&] { return !process_.running() || PQping(info.c_str()) == PQPING_OK; }, 30s);
  if (!ready || !process_.running()) {
    process_.stop(SIGINT, 10s);
    throw std::runtime_error("PostgreSQL did not start on port " + std::to_string(port_) +
                             "; log:\n" + read_file(log_path()));
  }
}

void postgres_server::stop() {
  // SIGINT: fast shutdown, which disconnects clients instead of waiting.
  process_.stop(SIGINT, 30s);
}

std::string postgres_server::query(const std::string& sql) const {
  const std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(conninfo(port_, true).c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("admin connection failed: " + std::string(PQerrorMessage(conn.get())));
  }
  const std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql.c_str()),
                                                             &PQclear);
  const auto status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error("admin query '" + sql +
                             "' failed: " + PQresultErrorMessage(result.get()));
  }
  if (PQntuples(result.get()) == 0 || PQnfields(result.get()) == 0) return "";
  return PQgetvalue(result.get(), 0, 0);
}

}  // namespace qorb::test
