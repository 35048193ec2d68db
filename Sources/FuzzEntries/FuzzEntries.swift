// The entry points of the libFuzzer targets in Fuzz/ (issue 7: hostile servers and fuzzed files), and of the
// regression test that replays their corpus without a sanitizer.
//
// Each entry hands arbitrary bytes to the real reader, exactly as the phone or the CLI would, and returns what it
// made of them: a result or the reader's own typed error. None may trap, hang or leak for any input; a fuzz target
// only calls the entry and throws the outcome away.

import ConfigFormats
import Crypto
import Flash

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The readers under fuzzing, one function per fuzz target.
///
/// ```swift
/// switch FuzzEntries.configXML(bytes) {
/// case .success(let document): print(document.entries.count)
/// case .failure(let error): print(error)   // a ConfigFormatError naming the file, the line and the fix
/// }
/// ```
public enum FuzzEntries {
    /// The fuzz targets by name (the executables in Fuzz/ and the folders of Fuzz/Corpus).
    public static let targets = ["config-xml", "config-text", "base64", "decrypt", "flash-image"]

    /// The passphrase the `decrypt` target tries, and its seed corpus was encrypted with (spec §5 test vector).
    public static let key = "12341234abcdabcd12341234abcdabcd"

    // MARK: - Configuration files

    /// A downloaded configuration file as a phone reading both formats sees it: detection, size limits, then the
    /// XML (plain-XML scanner, else libxml2) or Standard Format reader. Whenever the scanner reads the bytes,
    /// libxml2 must read them into the same document (the scanner's document is made of its entries in file order,
    /// which a fleet phone's own file also uses); a difference traps, as a crash the fuzzer reports.
    public static func configXML(_ bytes: [UInt8]) -> Result<ConfigDocument, ConfigFormatError> {
        if let scanned = ConfigParser.scanPlainXML(bytes) {
            let reference = Result { () throws(ConfigFormatError) in
                try ConfigParser.parseXMLWithLibXML2(bytes, file: "fuzz.cfg")
            }
            guard case .success(scanned) = reference else {
                preconditionFailure("the plain-XML scanner read \(bytes.count) bytes unlike libxml2: \(reference)")
            }
        }
        let (template, xml) = fleetTemplate
        if let read = try? ConfigParser.values(
            bytes,
            like: xml,
            file: "fuzz.cfg",
            accepting: [.xml],
            limits: ConfigParser.defaultLimits
        ) {
            let values = read.values
            precondition(values.count == template.entries.count, "a value for every one of the template's entries")
            // A fleet keeps the phone's saved copy as the template with these changes: they must make the file again.
            precondition(
                xml.rebuilt(read.changes, from: bytes) == bytes,
                "\(bytes.count) bytes read against the fleet template with changes that do not make them again"
            )
            var expected = template.entries
            for index in expected.indices { expected[index].value = values[index] }
            guard
                case .scanned(let scanned)? = try? ConfigParser.parseInFileOrder(
                    bytes,
                    file: "fuzz.cfg",
                    accepting: [.xml],
                    limits: ConfigParser.defaultLimits
                ), scanned.entries == expected, scanned.hasInitialSection == template.hasInitialSection
            else {
                preconditionFailure(
                    "\(bytes.count) bytes read against the fleet template unlike the scanner reads them"
                )
            }
        }
        return Result { () throws(ConfigFormatError) in
            try ConfigParser.parse(bytes, file: "fuzz.cfg", accepting: [.xml, .text])
        }
    }

    /// A fleet phone's own file as the scanner reads it, kept as the template the next phone's file is read against
    /// (`ConfigParser.values(_:like:file:accepting:limits:)`): `configXML` reads every input against it too. It is
    /// also a seed of the corpus (`Fuzz/Corpus/config-xml/fleet-template.xml`), so the fuzzer mutates its texts.
    public static let fleetTemplateText = """
        <?xml version="1.0" encoding="utf-8"?>
        <PANASIPPhoneConfig>
        <!-- made for {MAC} -->
        <Device>
        <Lines>
        <Line idx="1">
        <PHONE_NUMBER>20001</PHONE_NUMBER>
        <DISPLAY_NAME perm="RW">Ext 2000 L1</DISPLAY_NAME>
        <SIP_PASS perm='!' access="A">x000104729Q</SIP_PASS>
        </Line>
        </Lines>
        <EMPTY_ONE></EMPTY_ONE>
        <SELF_CLOSED/>
        <NTP_ADDR>ntp.example.net</NTP_ADDR>
        <!-- after the last text -->
        <TAIL_EMPTY/>
        </Device>
        </PANASIPPhoneConfig>

        """

    private static let fleetTemplate: (entries: ScannedEntries, xml: PlainXMLTemplate) = {
        guard
            case .scanned(let scanned)? = try? ConfigParser.parseInFileOrder(
                Array(fleetTemplateText.utf8),
                file: "fleet-template.xml",
                accepting: [.xml],
                limits: ConfigParser.defaultLimits
            )
        else { preconditionFailure("the fleet template is not plain XML") }
        guard let xml = scanned.template else { preconditionFailure("the fleet template cannot serve as one") }
        return (scanned, xml)
    }()

    /// Standard Format text: the bytes as they are when they start with the 44-byte header (after an optional
    /// BOM), else behind the header and a CRLF, so that every input reaches the line scanner.
    public static func configText(_ bytes: [UInt8]) -> Result<ConfigDocument, ConfigFormatError> {
        let header = Array("# Panasonic SIP Phone Standard Format File #".utf8)
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes.dropFirst(3) : bytes[...]
        let file = body.starts(with: header) ? bytes : header + [0x0D, 0x0A] + bytes
        return Result { () throws(ConfigFormatError) in
            try ConfigParser.parse(file, file: "fuzz.txt", accepting: [.text])
        }
    }

    // MARK: - Encrypted files

    /// The base64 layer of an encrypted file alone (what `openssl enc -a` wrote). A decoded result must survive
    /// the encoder and decoder again unchanged; a difference traps, as a crash the fuzzer reports.
    public static func base64(_ bytes: [UInt8]) -> Result<[UInt8], DecryptionError> {
        let result = Result { () throws(DecryptionError) in try Base64.decode(bytes) }
        if case .success(let decoded) = result {
            let again = Result { () throws(DecryptionError) in
                try Base64.decode(Base64.encode(decoded))
            }
            guard case .success(decoded) = again else {
                preconditionFailure("base64 round trip changed \(decoded.count) decoded bytes: \(again)")
            }
        }
        return result
    }

    /// A whole encrypted file, decrypted with `key` under each key length (128, 192, 256 bits) and the phone's
    /// MD5 digest (the decryptor tries SHA-256 itself for its diagnosis), as a phone with that key stored would.
    public static func decrypt(_ bytes: [UInt8]) -> [Result<[UInt8], DecryptionError>] {
        [128, 192, 256].map { bits in
            Result { () throws(DecryptionError) in try FileCrypto.decrypt(bytes, key: key, bits: bits, digest: .md5) }
        }
    }

    // MARK: - Flash images

    /// A flash image as `vphone flash info`, `flash export` and `events` read it: the bytes are written to `path`,
    /// opened read-only (`FlashStore.open`, which checks the header), summarised (`FlashInfo`: everything loaded and
    /// SQLite's integrity check) and rendered as text and JSON, exported as JSON, and the newest events read. The
    /// file and any journal are removed afterwards.
    ///
    /// - Parameter path: a file name in a private directory; nothing else may use it meanwhile.
    public static func flashImage(_ bytes: [UInt8], at path: String) -> Result<FlashInfo, FlashError> {
        defer {
            _ = unlink(path)
            _ = unlink(path + "-journal")
        }
        if let failure = writeFile(bytes, to: path) { return .failure(failure) }
        return Result { () throws(FlashError) in
            let store = try FlashStore.open(at: path, readOnly: true)
            defer { store.close() }
            let info = try FlashInfo(store: store)
            _ = info.text
            _ = info.json
            _ = try store.exportJSON(includeSecrets: false) { $0.hasSuffix("_PASS") }
            _ = try store.events(limit: 50)
            return info
        }
    }

    /// Writes `bytes` to a new file at `path` with mode 0600; nil when done.
    private static func writeFile(_ bytes: [UInt8], to path: String) -> FlashError? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return FlashError(kind: .io, path: path, message: "cannot create \(path) for fuzzing") }
        defer { _ = close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
            guard written > 0 else {
                return FlashError(kind: .io, path: path, message: "cannot write \(path) for fuzzing")
            }
            offset += written
        }
        return nil
    }
}
