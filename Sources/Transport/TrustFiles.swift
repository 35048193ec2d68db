// The trusted roots of a transport as one PEM file per CA-file setting, so that libcurl's CA cache works.

import Foundation

/// One combined PEM file per `extraCAFile` setting, built once per transport: the extra file's roots followed by the
/// system directory's.
///
/// libcurl 7.87+ keeps the certificate store it built from `CURLOPT_CAINFO` in the multi handle and reuses it for
/// new connections (`CURLOPT_CA_CACHE_TIMEOUT`, 24 h by default), but only when `CURLOPT_CAPATH` and
/// `CURLOPT_CAINFO_BLOB` are unset. With the extra file as CAINFO beside the system directory as CAPATH, every
/// connection parsed the file again (77% of an HTTPS fleet's CPU). The same roots in one file, set as CAINFO alone,
/// are parsed once per loop. What is trusted does not change: the extra file (or, without one, libcurl's built-in
/// bundle) and every certificate the system directory holds under its hashed names (`0123abcd.0`), the files
/// OpenSSL's directory lookup reads.
///
/// A setting falls back to the old options (CAINFO and CAPATH, libcurl reads them itself, with its own errors) when
/// the extra file cannot be read or holds no PEM block, so those failures read as before. A changed extra file (size
/// or modification time) gets a new combined file. Roots in memory (`extraCAPEM`, a phone's `<Certs>`) are not
/// combined: each phone's roots stay its own (CAINFO_BLOB beside CAPATH, as before).
final class TrustFiles: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `lock`.
    private let systemCAPath: String
    private let defaultBundle: String?
    private let lock = NSLock()
    private var directory: String?
    private var built: [String: Entry] = [:]
    private var serial = 0

    private struct Entry {
        var path: String?
        var stamp: FileStamp?
    }

    private struct FileStamp: Equatable {
        var size: Int
        var seconds: Int
        var nanoseconds: Int
    }

    /// - Parameters:
    ///   - systemCAPath: the hashed directory trusted beside `extraCAFile`.
    ///   - defaultBundle: libcurl's built-in CAINFO, trusted when no `extraCAFile` is given (with libcurl's built-in
    ///     CAPATH, `Curl.defaultCAPath`).
    init(systemCAPath: String, defaultBundle: String?) {
        self.systemCAPath = systemCAPath
        self.defaultBundle = defaultBundle
    }

    deinit { removeFiles() }

    /// The combined file for this setting, or nil to set the options as before.
    func combined(extraCAFile: String?) -> String? {
        let key = extraCAFile ?? ""
        let stamp = extraCAFile.flatMap(Self.stamp)
        lock.lock()
        defer { lock.unlock() }
        if let entry = built[key], entry.stamp == stamp { return entry.path }
        let path = build(extraCAFile: extraCAFile)
        built[key] = Entry(path: path, stamp: stamp)
        return path
    }

    /// Deletes the combined files (the transport is shutting down).
    func removeFiles() {
        lock.lock()
        defer { lock.unlock() }
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        directory = nil
        built = [:]
    }

    private func build(extraCAFile: String?) -> String? {
        var pem: [UInt8] = []
        let directoryToScan: String
        if let extraCAFile {
            guard let data = FileManager.default.contents(atPath: extraCAFile), Self.hasPEMBlock(data) else {
                return nil
            }
            append(data, to: &pem)
            directoryToScan = systemCAPath
        } else {
            // No extra file: libcurl's own defaults, the bundle and its built-in directory.
            guard let defaultBundle, let data = FileManager.default.contents(atPath: defaultBundle) else { return nil }
            append(data, to: &pem)
            directoryToScan = Curl.defaultCAPath
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directoryToScan)) ?? []
        for name in names.sorted() where Self.isHashedCertificateName(name) {
            if let data = FileManager.default.contents(atPath: directoryToScan + "/" + name) {
                append(data, to: &pem)
            }
        }
        do {
            let dir = try privateDirectory()
            serial += 1
            let path = dir + "/roots-\(serial).pem"
            guard
                FileManager.default.createFile(
                    atPath: path,
                    contents: Data(pem),
                    attributes: [.posixPermissions: 0o600]
                )
            else { return nil }
            return path
        } catch {
            return nil
        }
    }

    private func append(_ data: Data, to pem: inout [UInt8]) {
        pem.append(contentsOf: data)
        if pem.last != UInt8(ascii: "\n") { pem.append(UInt8(ascii: "\n")) }
    }

    private func privateDirectory() throws -> String {
        if let directory { return directory }
        let dir = NSTemporaryDirectory() + "vphone-roots-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        directory = dir
        return dir
    }

    /// `0123abcd.0`: a certificate under its subject hash (`0123abcd.r0` would be a CRL).
    static func isHashedCertificateName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 8, !parts[1].isEmpty else { return false }
        return parts[0].allSatisfy(\.isHexDigit) && parts[1].allSatisfy(\.isNumber)
    }

    static func hasPEMBlock(_ data: Data) -> Bool {
        data.range(of: Data("-----BEGIN ".utf8)) != nil
    }

    private static func stamp(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(
            size: Int(info.st_size),
            seconds: Int(info.st_mtim.tv_sec),
            nanoseconds: Int(info.st_mtim.tv_nsec)
        )
    }
}
