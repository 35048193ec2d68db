// A minimal read-only TFTP server (RFC 1350, no options) for tests: the phone's first-choice scheme
// (spec §3) needs a real server, and none ships with the machine.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Serves `files` over TFTP on 127.0.0.1, one transfer at a time, on its own thread.
final class TFTPServer: @unchecked Sendable {
    let port: Int
    private let files: [String: [UInt8]]
    private let socket: Int32
    private let lock = NSLock()
    private var running = true
    private let finished = DispatchSemaphore(value: 0)

    init(files: [String: [UInt8]]) throws {
        self.files = files
        let socket = try Self.udpSocket()
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        self.socket = socket
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in serve() }.start()
    }

    func stop() {
        lock.lock()
        let wasRunning = running
        running = false
        lock.unlock()
        guard wasRunning else { return }
        finished.wait()
        close(socket)
    }

    deinit { stop() }

    var url: String { "tftp://127.0.0.1:\(port)" }

    // MARK: - Protocol

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 1024)
        while isRunning {
            var peer = sockaddr_in()
            guard let count = Self.receive(socket, &buffer, from: &peer), count > 4, buffer[1] == 1 else { continue }
            // RRQ: 0 1 filename 0 mode 0 [options...]
            let name = String(decoding: buffer[2..<count].prefix(while: { $0 != 0 }), as: UTF8.self)
            guard let transferSocket = try? Self.udpSocket() else { continue }
            defer { close(transferSocket) }
            guard let contents = files[name] else {
                // ERROR, code 1: file not found.
                Self.send(transferSocket, [0, 5, 0, 1] + Array("File not found".utf8) + [0], to: peer)
                continue
            }
            sendFile(contents, on: transferSocket, to: peer)
        }
        finished.signal()
    }

    private func sendFile(_ contents: [UInt8], on transferSocket: Int32, to peer: sockaddr_in) {
        var block = 1
        var offset = 0
        var ack = [UInt8](repeating: 0, count: 516)
        while true {
            let chunk = Array(contents[offset..<min(offset + 512, contents.count)])
            let packet = [0, 3, UInt8(block >> 8 & 0xff), UInt8(block & 0xff)] + chunk
            var acknowledged = false
            for _ in 0..<5 where !acknowledged {
                Self.send(transferSocket, packet, to: peer)
                var from = sockaddr_in()
                while let count = Self.receive(transferSocket, &ack, from: &from) {
                    if count >= 4, ack[1] == 4, Int(ack[2]) << 8 | Int(ack[3]) == block & 0xffff {
                        acknowledged = true
                        break
                    }
                    if count >= 2, ack[1] == 5 { return }  // the client gave up (e.g. too large)
                }
            }
            guard acknowledged, chunk.count == 512 else { return }
            offset += 512
            block += 1
        }
    }

    // MARK: - Sockets

    private static func udpSocket() throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        return fd
    }

    private static func receive(_ fd: Int32, _ buffer: inout [UInt8], from peer: inout sockaddr_in) -> Int? {
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = buffer.withUnsafeMutableBytes { bytes in
            withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(fd, bytes.baseAddress, bytes.count, 0, $0, &length)
                }
            }
        }
        return count > 0 ? count : nil
    }

    private static func send(_ fd: Int32, _ packet: [UInt8], to peer: sockaddr_in) {
        var peer = peer
        _ = packet.withUnsafeBytes { bytes in
            withUnsafePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}
