// A real tftpd-hpa for tests: TFTP is the phone's first-choice scheme for URLs without one (spec §3).
// Also the process plumbing shared by this module's other test daemons (FTPServer, ApacheServer).

import Foundation
import Transport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// tftpd-hpa serving a directory on 127.0.0.1, for tests.
///
/// ```swift
/// let server = try TFTPServer(root: dir)
/// defer { server.stop() }
/// // fetch server.baseURL + "/KX-UTG300.cfg", i.e. "tftp://127.0.0.1:PORT/KX-UTG300.cfg"
/// ```
///
/// Started as
/// `in.tftpd --foreground --address 127.0.0.1:PORT --secure --permissive --user root ROOT`:
/// it chroots into `root` (so URLs name files relative to it) and runs its transfers as root, so any file
/// under `root` can be read whatever its mode. That needs root, which is what the tests run as here.
/// It is ready when it answers a real TFTP read (of a file that does not exist) through `CurlTransport`.
public final class TFTPServer: @unchecked Sendable {
    // @unchecked: all stored properties are immutable except `process`, guarded by `lock`.

    public typealias Failure = TestServerFailure

    /// The UDP port on 127.0.0.1.
    public let port: Int
    /// The served directory (absolute).
    public let root: String
    /// The server's private directory (its standard output and error are in `tftpd.log` there).
    public let directory: String

    /// `tftp://127.0.0.1:PORT`, without a trailing slash.
    public var baseURL: String { "tftp://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private var process: DaemonProcess?

    /// Starts in.tftpd serving `root` and returns once it answers TFTP reads.
    ///
    /// - Throws: `TestServerFailure` if not root, if in.tftpd (package tftpd-hpa) is missing, or if it
    ///   does not come up within 10 s.
    public init(root: String) throws {
        guard geteuid() == 0 else {
            throw Failure("TFTPServer needs root: in.tftpd chroots into the served directory (--secure)")
        }
        guard let tftpd = Daemon.findExecutable("in.tftpd", extra: ["/usr/sbin", "/usr/local/sbin"]) else {
            throw Failure("in.tftpd not found on PATH or in /usr/sbin: install tftpd-hpa")
        }
        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        let directory = try Daemon.makeTemporaryDirectory("vphone-tftpd")
        self.root = root
        self.directory = directory
        let log = directory + "/tftpd.log"
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        var lastError = ""
        for _ in 0..<8 {
            let port = Daemon.freeUDPPort()
            let process = try DaemonProcess(
                tftpd,
                [
                    "--foreground", "--address", "127.0.0.1:\(port)", "--secure", "--permissive",
                    "--user", "root", root,
                ],
                output: log
            )
            let ready = Daemon.waitUntil(seconds: 10, process: process) {
                Self.answers(port: port, transport: transport)
            }
            if ready {
                self.port = port
                self.process = process
                return
            }
            let exited = !process.isRunning
            let status = process.stop()
            lastError = Daemon.readText(log) + " (exit status \(status))"
            // in.tftpd says why only to syslog; exiting at once (status 71) is what a port taken between
            // freeUDPPort() and its bind looks like: try another port. Not answering in time is not.
            guard exited else { break }
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw Failure("in.tftpd did not start: \(lastError.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops in.tftpd and its transfers (SIGTERM, then SIGKILL after 10 s) and waits for it. Safe to call more
    /// than once.
    public func stop() {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        process?.stop()
    }

    /// True when a read request gets a TFTP answer: "file not found" for the probe name, as it does not exist.
    private static func answers(port: Int, transport: CurlTransport) -> Bool {
        var request = FetchRequest(
            url: "tftp://127.0.0.1:\(port)/vphone-readiness-probe-\(UInt32.random(in: 0...UInt32.max))",
            userAgent: "vphone-tests"
        )
        // Without a server, a TFTP read just waits: keep each try short.
        request.totalTimeoutMs = 300
        let done = DispatchSemaphore(value: 0)
        let answered = Box(false)
        transport.fetch(request) { result in
            switch result {
            case .success: answered.value = true
            case .failure(let failure): answered.value = failure.kind == .notFound
            }
            done.signal()
        }
        done.wait()
        return answered.value
    }
}

/// A test server could not be started.
public struct TestServerFailure: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Process plumbing shared by the test servers

/// Finding, probing and feeding daemons for tests (what NginxServer does for itself), shared by
/// TFTPServer, FTPServer and ApacheServer; `DaemonProcess` starts and stops them.
enum Daemon {
    /// Polls `ready` until it holds (true), the process exits or the time is up (false).
    static func waitUntil(seconds: Double, process: DaemonProcess, _ ready: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard process.isRunning else { return false }
            if ready() { return true }
            usleep(5_000)
        }
        return false
    }

    /// Runs a command to completion in `directory` and returns its standard output, trimmed.
    ///
    /// - Parameter input: its standard input (passwords go there, not on the command line), through a
    ///   file only the owner can read in `directory`, removed afterwards.
    static func run(
        _ executable: String,
        _ arguments: [String],
        input: String? = nil,
        in directory: String
    ) throws -> String {
        let name = "run-\(UInt32.random(in: 0...UInt32.max))"
        let inputPath = directory + "/\(name).in"
        let outputPath = directory + "/\(name).out"
        let errorPath = directory + "/\(name).err"
        defer {
            for path in [inputPath, outputPath, errorPath] { try? FileManager.default.removeItem(atPath: path) }
        }
        try write(input ?? "", to: inputPath)
        let process = try DaemonProcess(
            executable,
            arguments,
            input: inputPath,
            output: outputPath,
            errors: errorPath
        )
        let status = process.waitForExit()
        guard status == 0 else {
            throw TestServerFailure(
                "\(executable) \(arguments.joined(separator: " ")) failed (status \(status)): \(readText(errorPath))"
            )
        }
        return readText(outputPath).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Sockets

    /// A UDP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
    static func freeUDPPort() -> Int {
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var address = loopback(port: 0)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { continue }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { continue }
            return Int(UInt16(bigEndian: address.sin_port))
        }
        fatalError("no free UDP port on 127.0.0.1")
    }

    /// The first bytes a TCP server on 127.0.0.1:`port` sends after accepting (an FTP greeting), or
    /// nil if nothing accepts or nothing arrives within `timeoutMs`. "" if it accepts but stays silent.
    static func greeting(port: Int, timeoutMs: Int = 500) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        var timeout = timeval(tv_sec: time_t(timeoutMs / 1000), tv_usec: suseconds_t(timeoutMs % 1000 * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    // MARK: Files

    static func findExecutable(_ name: String, extra: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + extra {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A new directory `<tmp>/<prefix>-XXXXXX`, mode 0700 unless `mode` says otherwise.
    static func makeTemporaryDirectory(_ prefix: String, mode: mode_t = 0o700) throws -> String {
        let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
        var template = Array((base + prefix + "-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let path = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: path)
        }
        guard let created else { throw TestServerFailure("cannot create a temporary directory in \(base)") }
        guard chmod(created, mode) == 0 else {
            throw TestServerFailure("cannot set the mode of \(created): errno \(errno)")
        }
        return created
    }

    /// Writes `text` to `path` with the given mode (set explicitly: not subject to the umask).
    static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        guard chmod(path, mode) == 0 else { throw TestServerFailure("cannot set the mode of \(path): errno \(errno)") }
    }

    static func readText(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

// MARK: - Daemon process

/// A daemon started with `posix_spawn`, in its own process group, with default signal handling, an
/// empty signal mask and no file descriptors but 0-2.
///
/// Not Foundation's `Process`, for three reasons learnt the hard way: a child spawned from a Swift
/// concurrency thread inherits that thread's mask, in which SIGTERM is blocked (Apache then ignores
/// `stop()`); the child inherits every descriptor the test process has open, including the sockets by
/// which `Process` notices other children's exit; and `Process` reports an exit only once every
/// descendant holding its socket has closed it, so one orphaned worker makes `waitUntilExit` spin forever.
final class DaemonProcess: @unchecked Sendable {
    // @unchecked: `reaped` is guarded by `lock`; `pid` is immutable.

    let pid: pid_t
    private let lock = NSLock()
    private var reaped = false

    /// Starts `executable` with standard input from `input` (default /dev/null), standard output to
    /// `output` and standard error to `errors` (default: `output`), both appended to.
    init(
        _ executable: String,
        _ arguments: [String],
        input: String = "/dev/null",
        output: String,
        errors: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errors {
            posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)
        )

        let argv = [executable] + arguments
        let cArguments = argv.map { strdup($0) }
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, cArguments + [nil], environ)
        guard code == 0 else {
            throw TestServerFailure("cannot start \(executable): \(String(cString: strerror(code)))")
        }
        self.pid = pid
    }

    /// Waits for the process to exit by itself, reaps it and returns its exit status (128 + the signal
    /// if a signal ended it).
    func waitForExit() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        guard !reaped else { return -1 }
        return reap()
    }

    /// Waits for the exit and reaps. Call under `lock`.
    private func reap() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    deinit { stop() }

    /// False once the process has exited (it may not be reaped yet).
    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !reaped && !hasExited()
    }

    /// SIGTERM to the daemon; after `graceSeconds` SIGKILL. Once it has exited, whatever is left of its
    /// process group (workers, sessions) is killed, then it is reaped. Safe to call more than once.
    ///
    /// - Returns: the exit status as `waitForExit()` gives it, or -1 if it had been reaped already.
    @discardableResult
    func stop(graceSeconds: Double = 10) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        guard !reaped else { return -1 }
        if !hasExited() {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(graceSeconds)
            while !hasExited() && Date() < deadline { usleep(2_000) }
        }
        // The exited leader is not reaped yet, so the group's id cannot have been reused: this reaches
        // only the daemon's own descendants (and the leader itself, if it outlived the grace period).
        kill(-pid, SIGKILL)
        return reap()
    }

    /// Whether the process has exited, without reaping it. Call under `lock`.
    private func hasExited() -> Bool {
        var info = siginfo_t()
        let code = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        // ECHILD: already reaped by someone else; treat as gone.
        if code != 0 { return errno != EINTR }
        return info._sifields._sigchld.si_pid == pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not
    /// import; nil where it is missing, and the child then inherits the descriptors.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
}

/// A value written by one thread and read by another after a semaphore handed it over.
private final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
