import ArgumentParser
import ControlAPI
import Dispatch
import Flash
import Foundation
import PhoneCore
import PhoneRuntime
import Transport

struct Boot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Power on one virtual phone: find the provisioning server, download and apply its files, keep resyncing.",
        discussion: """
            The flash (Storage/<MAC>.flash unless --flash) is created factory-fresh on first boot; an existing flash \
            carries its own MAC. Without --once the phone runs until SIGINT/SIGTERM (or --duration of phone time) \
            and re-provisions on its timers (CFG_CYCLIC, CFG_RTRY_INTVL, CFG_RESYNC_TIME).

            Exit codes with --once (and after --duration: of the last cycle): 0 every configured file downloaded and \
            applied; 10 at least one file fell back to its saved copy (or had none); 11 no usable configuration at \
            all; 64 bad command line (or a --record DIR that cannot be used); 65 unusable flash file, profile or \
            recording, or a --record recording that could not be written in full (a full disk: the phone runs on).

            Quirks (profile "quirks"): reuseConnection (default off: a fresh connection per file), \
            overrideFromSavedCopy (default off: perm="!" overrides a local edit only when freshly downloaded), \
            redirectionServer (default off), kdfDigest (md5).
            """
    )

    @OptionGroup var location: FlashLocation
    @OptionGroup var profileOption: ProfileOption
    @OptionGroup var logging: LoggingOptions

    @Option(
        help:
            "Initial-file URL for this power-on, as if set by hand (USR_PROV_SVR_URL); not saved. Schemes: http, https, tftp, ftp, or none (tried as tftp, http, https, ftp)."
    )
    var provURL: String?

    @Option(
        name: .customLong("dhcp-option160"),
        help: "The value a DHCP server hands out in option 160 (honours OPTION160_ENABLE)."
    )
    var option160: String?
    @Option(name: .customLong("dhcp-option159"), help: "The value of DHCP option 159 (honours OPTION159_ENABLE).")
    var option159: String?
    @Option(
        name: .customLong("dhcp-option66"),
        help: "The value of DHCP option 66, the TFTP server name (honours OPTION66_ENABLE)."
    )
    var option66: String?
    @Option(help: "The URL a SIP plug-and-play NOTIFY would carry (honours SIPPNP_ENABLE; vphone sends no multicast).")
    var sipPnpURL: String?

    @Flag(help: "Exit after the boot-time provisioning, with its outcome as the exit code.")
    var once = false

    @Option(help: "Run the phone's clock K times faster than real time (e.g. 10080: a week in a minute).")
    var timeScale: Double = 1

    @Option(help: "Stop after this much phone time (90s, 10m, 2h, 7d); exit code of the last cycle.")
    var duration: DurationArgument?

    @Option(help: "PEM file of extra root certificates trusted for HTTPS, besides the system store.")
    var caFile: String?

    @Flag(help: "Do not verify HTTPS certificates (labs only; logged loudly).")
    var insecure = false

    @Option(
        help:
            "Serve the control and status API (GET /status, /config, /events, /healthz, a status page at /; POST /resync, /reboot, /factory-reset; PUT /config/NAME) on this port. Off unless given."
    )
    var httpPort: Int?

    @Option(help: "Address the control API binds (default 127.0.0.1: this host only; 0.0.0.0 in a container).")
    var httpBind: String = "127.0.0.1"

    @Option(help: "Require this admin password (user admin, HTTP Basic) on the control API; /healthz stays open.")
    var adminPassword: String?

    @Option(help: "Read the admin password from the first line of this file (a Docker secret).")
    var adminPasswordFile: String?

    @Flag(help: "Boot a copy of the flash image and leave the image itself untouched (its path is printed at the end).")
    var snapshot = false

    @Option(
        help:
            "Record every exchange with the server (URL, status, body) and the flash as it was, into DIR: a new or empty directory (made mode 0700), never one that holds files."
    )
    var record: String?

    @Option(
        help:
            "Serve the phone from a recording made with --record DIR, with no network and a virtual clock that starts when the recording did. Boots a copy of the recorded flash, or the image given with --flash (add --snapshot to boot a copy of it). Implies --once unless --duration."
    )
    var replay: String?

    func validate() throws {
        if let duration, let problem = duration.problem {
            throw ValidationError("--duration \(duration.text): \(problem)")
        }
        if replay == nil { try location.requireGiven() }
        // The MAC of a new image (an existing one carries its own: use --flash for an image made with such a MAC).
        try location.mac?.requirePhoneMAC("--mac")
        try checkTimeScale(timeScale)
        let macros = MacroContext(mac: location.mac ?? MAC(value: 0), model: "KX-UTG300", firmware: "0")
        for (flag, value) in [
            ("--prov-url", provURL), ("--dhcp-option160", option160), ("--dhcp-option159", option159),
            ("--dhcp-option66", option66), ("--sip-pnp-url", sipPnpURL),
        ] {
            guard let value else { continue }
            do {
                _ = try ProvisioningURL.candidates(value, macros: macros)
            } catch {
                throw ValidationError("\(flag): \(error.reason)")
            }
        }
        if record != nil && replay != nil {
            throw ValidationError("--record and --replay exclude each other: record a live boot, replay it later")
        }
        if let caFile { try checkCAFile(caFile) }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "vphone")
        let profile = try profileOption.load()
        if let record {
            // Before the flash is created: a recording that cannot be made must cost nothing.
            do {
                try Recording.prepareDirectory(record)
            } catch {
                fail("--record \(error)")
                throw Exit.usage
            }
        }
        var manifest: Recording.Manifest?
        if let replay {
            do {
                manifest = try Recording.load(replay)
            } catch {
                fail("\(error)")
                throw Exit.data
            }
        }
        // A replay runs on virtual time from the moment the recording started: the same timeline every time.
        let clock: any PhoneClock =
            manifest.map { VirtualClock(start: PhoneTime(millisecondsSinceEpoch: $0.phoneStartMs)) }
            ?? ScaledClock(scale: timeScale)

        var target = location
        var copiedFrom: String?  // the image a copy was made of (--snapshot, --replay): what errors name
        if let manifest, target.mac == nil, !FileManager.default.fileExists(atPath: target.path) {
            target.mac = MAC(manifest.mac)  // a new image for a replay belongs to the recorded phone
        }
        if let replay, let manifest, location.flash == nil {
            // Without --flash, a replay boots a copy of the recorded flash and never writes into the recording.
            let recorded: String?
            do {
                recorded = try Recording.flashPath(in: replay)
            } catch {
                fail("\(error)")
                throw Exit.data
            }
            if let recorded {
                target.flash = try scratchCopy(of: recorded, reason: "--replay")
                copiedFrom = recorded
            } else {
                // A recording of a phone's very first boot: start from a factory-fresh flash with the recorded MAC.
                target.flash = try scratchDirectory(reason: "--replay") + "/\(manifest.mac).flash"
                target.mac = MAC(manifest.mac)
            }
        } else if snapshot {
            target.flash = try scratchCopy(of: location.path, reason: "--snapshot")
            copiedFrom = location.path
        }
        let store: FlashStore
        let snapshot: FlashSnapshot
        if let copiedFrom {
            (store, snapshot) = try openCopy(target, of: copiedFrom)
        } else {
            store = try target.openOrCreate(profile: profile, now: clock.now())
            if replay != nil {
                do {
                    try store.integrityCheck()
                } catch {
                    fail("\(error)")
                    throw Exit.data
                }
            }
            snapshot = try loadSnapshot(store)
        }
        // One running phone per image (a copy of --snapshot or --replay is this run's own).
        let runLock: RunLock
        do {
            runLock = try RunLock(path: target.path, holder: "a phone", alternative: "boot a copy with --snapshot")
        } catch {
            store.close()
            fail("\(error)")
            throw Exit.data
        }
        defer { runLock.release() }
        if insecure {
            logger.warning("TLS VERIFICATION IS OFF (--insecure): any server can impersonate the provisioning server")
        }
        if snapshot.identity.model != profile.model {
            logger.notice("flash was made for \(snapshot.identity.model); booting it with the \(profile.model) profile")
        }
        var discovery = DiscoveryOptions(
            provisioningURL: provURL,
            sipPnPURL: sipPnpURL,
            option160: option160,
            option159: option159,
            option66: option66
        )
        if let manifest, discovery == DiscoveryOptions() { discovery = manifest.discoveryOptions }
        let machine = PhoneMachine(profile: PreparedProfile(profile), flash: snapshot, discovery: discovery)
        var curl: CurlTransport?
        var recorder: RecordingTransport?
        var transport: any Transport
        if let manifest, let replay {
            transport = ReplayTransport(dir: replay, manifest: manifest)
        } else {
            do {
                let engine = try CurlTransport()
                curl = engine
                transport = engine
            } catch {
                fail("cannot start the transport: \(error)")
                throw ExitCode(70)
            }
            if let record {
                do {
                    let recording = try RecordingTransport(
                        wrapping: transport,
                        dir: record,
                        flashPath: target.path,
                        mac: snapshot.identity.mac,
                        phoneStart: clock.now(),
                        discovery: discovery,
                        logger: logger
                    )
                    recorder = recording
                    transport = recording
                } catch {
                    fail("\(error)")
                    curl?.shutdown()
                    throw Exit.data
                }
            }
        }
        let once = self.once || (replay != nil && duration == nil)
        let runtime = PhoneRuntime(
            machine: machine,
            store: store,
            transport: transport,
            clock: clock,
            logger: logger,
            tls: .init(extraCAFile: caFile, insecure: insecure)
        )
        defer {
            if target.path != location.path {
                note(
                    "booted a copy, \(target.path); the original is untouched. See: vphone events --flash \(target.path) --timeline"
                )
            }
        }

        let stopper = SignalStopper(runtime: runtime)
        var api: ControlServer?
        if let httpPort {
            do {
                let auth = try ControlAuth(password: adminPassword, passwordFile: adminPasswordFile)
                api = try await ControlServer.start(
                    runtime: runtime,
                    port: httpPort,
                    bind: httpBind,
                    auth: auth,
                    logger: logger
                )
            } catch {
                fail("\(error)")
                await runtime.shutdown()
                curl?.shutdown()
                throw Exit.usage
            }
        }
        var last = await runtime.powerOn()
        if !once, last != nil {
            let stop = duration.map { clock.now().adding(milliseconds: $0.milliseconds) }
            let loop = Task { await runtime.run(until: stop) }
            stopper.onStop { loop.cancel() }
            await loop.value
            last = await runtime.machine.lastReport
        }
        await api?.stop()
        await runtime.shutdown()
        curl?.shutdown()
        // A signal is a clean stop (exit 0); otherwise the exit code is the last cycle's outcome.
        let outcome = stopper.stopped ? 0 : (last.map { $0.outcome == .provisioned ? 0 : $0.outcome.rawValue } ?? 0)
        // A recording with a gap (a full disk) must not pass for a whole one: said, and exit 65, after the run.
        let incompleteRecording = recorder?.incomplete
        if let incompleteRecording { fail("\(incompleteRecording) (the boot itself ended with exit code \(outcome))") }
        let flashError = await runtime.flashError
        if let flashError {
            fail("\(flashError)")
            throw Exit.data
        }
        if incompleteRecording != nil { throw Exit.data }
        if outcome != 0 { throw ExitCode(outcome) }
    }
}

/// Copies a flash image into a new private scratch directory and returns the copy's path.
func scratchCopy(of source: String, reason: String) throws -> String {
    guard FileManager.default.fileExists(atPath: source) else {
        fail("\(reason): no flash image at \(source)")
        throw Exit.data
    }
    let dir = try scratchDirectory(reason: reason)
    do {
        let copy = dir + "/" + URL(fileURLWithPath: source).lastPathComponent
        try FileManager.default.copyItem(atPath: source, toPath: copy)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: copy)
        return copy
    } catch {
        fail("\(reason): cannot copy \(source): \(error.localizedDescription)")
        throw Exit.data
    }
}

/// Opens the copy a boot runs on (`--snapshot`, `--replay`), checked whole. When it cannot be booted the copy is
/// removed and the error names `original`, the image the user gave: the copy is only a detail of how it is booted.
func openCopy(_ copy: FlashLocation, of original: String) throws -> (FlashStore, FlashSnapshot) {
    func refuse(_ message: String, _ code: ExitCode, closing store: FlashStore?) -> ExitCode {
        store?.close()
        let scratch = (copy.path as NSString).deletingLastPathComponent
        if (scratch as NSString).lastPathComponent.hasPrefix("vphone-") {
            try? FileManager.default.removeItem(atPath: scratch)
        }
        fail(message.replacingOccurrences(of: copy.path, with: original))
        return code
    }
    let store: FlashStore
    do { store = try FlashStore.open(at: copy.path) } catch { throw refuse("\(error)", Exit.data, closing: nil) }
    let snapshot: FlashSnapshot
    do {
        try store.integrityCheck()
        snapshot = try store.load()
    } catch {
        throw refuse("\(error)", Exit.data, closing: store)
    }
    if let mismatch = copy.macMismatch(snapshot) { throw refuse(mismatch, Exit.usage, closing: store) }
    return (store, snapshot)
}

/// A new private (0700) directory under the system's temporary directory.
func scratchDirectory(reason: String) throws -> String {
    let dir = NSTemporaryDirectory() + "vphone-\(reason.dropFirst(2))-\(UUID().uuidString.prefix(8))"
    do {
        try FileManager.default.createDirectory(
            atPath: dir,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
    } catch {
        fail("\(reason): cannot create \(dir): \(error.localizedDescription)")
        throw Exit.data
    }
    return dir
}
