import PhoneCore
import PhoneRuntime

/// `GET /`: the phone's status on one page, laid out like the KX-UTG300's own web user interface (a blue title
/// band, a menu on the left, grey-headed tables). Plain HTML and CSS, no script; every value is escaped; it reloads
/// itself every 15 seconds.
enum StatusPage {
    static func render(status s: PhoneStatus, config: [EffectiveValue], events: [LogEntry], host: String) -> String {
        let model = s.identity.model
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="refresh" content="15">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(e(model)) \(e(s.identity.mac.upper)) - Web User Interface</title>
            <style>\(css)</style>
            </head>
            <body>
            <header><span class="brand">Panasonic</span><span class="product">\(e(model)) Web User Interface</span>
            <span class="sim">vphone &middot; virtual phone</span></header>
            <div class="layout">
            <nav>
            <a class="on" href="#status">Status</a>
            <a href="#provisioning">Provisioning</a>
            <a href="#config">Configuration</a>
            <a href="#events">Event Log</a>
            <a href="#api">Control API</a>
            </nav>
            <main>

            """

        // MARK: Status
        html += section("status", "Status", "Product Information")
        let next = s.nextTimer.map { "\($0.kind.rawValue) at \($0.at)" } ?? "none"
        html += table(
            rows: [
                ("Model", e(model)),
                ("MAC Address", "<span class=\"mono\" id=\"mac\">\(e(s.identity.mac.upper))</span>"),
                ("IP Address", e(host)),
                ("Firmware Version", e(s.identity.firmware)),
                ("State", badge(s.state)),
                ("Boot Count", e(String(s.bootCount))),
                ("Phone Time", e(s.now.description)),
                ("Next Timer", e(next)),
                ("File Key", s.keyPresent ? "stored" : "none"),
                (
                    "Root Certificates",
                    s.rootCertificateSlots.isEmpty
                        ? "none" : e(s.rootCertificateSlots.map(String.init).joined(separator: ", "))
                ),
            ]
        )

        // MARK: Provisioning
        html += section("provisioning", "Provisioning", "Last Cycle")
        if let c = s.lastCycle {
            html += table(
                rows: [
                    ("Trigger", e(c.trigger)),
                    ("Outcome", badge(c.outcome.name)),
                    ("Started", e(c.startedAt.description)),
                    ("Finished", e(c.finishedAt.description)),
                ]
            )
        } else {
            html += "<p class=\"none\">No provisioning cycle has finished since power-on.</p>\n"
        }
        html += "<h3>Files</h3>\n"
        let files = FileKind.allCases.compactMap { s.files[$0] }
        if files.isEmpty {
            html += "<p class=\"none\">No file has been fetched yet.</p>\n"
        } else {
            html += grid(
                header: ["File", "Outcome", "URL", "Reason", "Time"],
                rows: files.map { f in
                    [
                        e(f.kind.rawValue), badge(f.outcome.rawValue),
                        "<span class=\"mono\">\(e(ControlJSON.redactCredentials(in: f.url)))</span>",
                        e(ControlJSON.redactCredentials(in: f.reason)), e(f.at.description),
                    ]
                }
            )
        }

        // MARK: Configuration
        let changed = config.filter { $0.source != .factory }
        html += section(
            "config",
            "Configuration",
            "Changed from the factory defaults (\(changed.count) of \(config.count))"
        )
        if changed.isEmpty {
            html += "<p class=\"none\">Every parameter has its factory default.</p>\n"
        } else {
            html += grid(
                header: ["Parameter", "Value", "Source", "Perm"],
                rows: changed.map { r in
                    [
                        "<span class=\"mono\">\(e(r.name))</span>",
                        "<span class=\"mono\">\(e(ControlJSON.shown(r)))</span>",
                        e(r.source.rawValue), e(r.perm),
                    ]
                }
            )
        }

        // MARK: Events
        html += section("events", "Event Log", "Newest \(events.count) events, newest first")
        if events.isEmpty {
            html += "<p class=\"none\">The event log is empty.</p>\n"
        } else {
            html += grid(
                header: ["Time", "Boot", "Level", "Event", "Message"],
                rows: events.reversed().map { ev in
                    [
                        e(ev.at.description), e(String(ev.boot)), badge(ev.level.rawValue), e(ev.kind),
                        e(ControlJSON.redactCredentials(in: ev.message)),
                    ]
                }
            )
        }

        // MARK: API
        html += section("api", "Control API", "JSON over HTTP")
        html += grid(
            header: ["Request", "What it does"],
            rows: [
                ["GET /status", "state, IP, identity, last outcome per file, timers"],
                ["GET /config", "effective parameters with their sources (secrets masked); ?changed=1"],
                ["PUT /config/NAME", "a local edit: body {\"value\": \"...\"}"],
                ["GET /events", "the flash event log; ?limit=N"],
                ["POST /resync", "provision now; answers with the outcome"],
                ["POST /reboot", "power cycle"],
                ["POST /factory-reset", "clear flash but the identity, then reboot"],
                ["GET /healthz", "ok while the phone runs"],
            ].map { ["<span class=\"mono\">\(e($0[0]))</span>", e($0[1])] }
        )
        html += """
            </main>
            </div>
            <footer>vphone emulates the provisioning of a Panasonic \(e(model)); it is not a Panasonic product.</footer>
            </body>
            </html>

            """
        return html
    }

    // MARK: - Pieces

    /// HTML-escapes text for element content and double-quoted attributes.
    static func e(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func section(_ id: String, _ title: String, _ subtitle: String) -> String {
        "<h2 id=\"\(id)\">\(e(title))</h2>\n<h3>\(e(subtitle))</h3>\n"
    }

    /// Label/value rows; values are HTML already escaped by the caller.
    private static func table(rows: [(String, String)]) -> String {
        var out = "<table class=\"info\">\n"
        for (label, value) in rows { out += "<tr><th>\(e(label))</th><td>\(value)</td></tr>\n" }
        return out + "</table>\n"
    }

    /// A table with a header row; cells are HTML already escaped by the caller.
    private static func grid(header: [String], rows: [[String]]) -> String {
        var out = "<table class=\"grid\">\n<tr>" + header.map { "<th>\(e($0))</th>" }.joined() + "</tr>\n"
        for row in rows { out += "<tr>" + row.map { "<td>\($0)</td>" }.joined() + "</tr>\n" }
        return out + "</table>\n"
    }

    /// A coloured label for a state, outcome or level.
    private static func badge(_ word: String) -> String {
        let tone: String
        switch word {
        case "idle", "provisioned", "downloaded", "info": tone = "good"
        case "fell_back", "skipped", "warning": tone = "warn"
        case "failed", "unconfigured", "stopped", "error": tone = "bad"
        default: tone = word.hasPrefix("provisioning") ? "busy" : "plain"
        }
        return "<span class=\"badge \(tone)\">\(e(word))</span>"
    }

    private static let css = """
        body{margin:0;font-family:Arial,Helvetica,sans-serif;font-size:13px;color:#222;background:#eef1f5}
        header{background:linear-gradient(#1f4fa8,#0b3383);color:#fff;padding:10px 18px;display:flex;align-items:baseline;gap:18px}
        .brand{font-weight:bold;font-size:22px;letter-spacing:.5px}
        .product{font-size:15px}
        .sim{margin-left:auto;font-size:11px;opacity:.8}
        .layout{display:flex;min-height:calc(100vh - 80px)}
        nav{width:170px;background:#dde3ec;border-right:1px solid #b8c2d0;padding-top:8px}
        nav a{display:block;padding:8px 16px;color:#0b3383;text-decoration:none;border-bottom:1px solid #c9d1dc}
        nav a.on{background:#fff;font-weight:bold;border-left:4px solid #1f4fa8}
        main{flex:1;padding:6px 24px 24px;background:#fff}
        h2{color:#0b3383;font-size:17px;border-bottom:2px solid #1f4fa8;padding-bottom:4px;margin:22px 0 8px}
        h3{font-size:13px;color:#444;margin:12px 0 6px}
        table{border-collapse:collapse;margin-bottom:8px}
        th,td{border:1px solid #c9d1dc;padding:4px 10px;text-align:left;vertical-align:top}
        table.info th{background:#e8edf4;width:170px;font-weight:normal}
        table.grid th{background:#e8edf4}
        table.grid tr:nth-child(even) td{background:#f7f9fb}
        .mono{font-family:"DejaVu Sans Mono",Consolas,monospace;font-size:12px}
        .badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
        .good{background:#2e8b3d}.warn{background:#c98a00}.bad{background:#c0392b}.busy{background:#1f6fc8}.plain{background:#777}
        .none{color:#666;font-style:italic}
        footer{font-size:11px;color:#666;padding:8px 18px;background:#eef1f5;border-top:1px solid #c9d1dc}
        """
}
