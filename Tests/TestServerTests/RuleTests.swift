import Testing

@testable import TestServer

@Suite struct RuleTests {
    @Test func everyBehaviourOfTheCatalogueParsesBackFromItsSyntax() throws {
        let more: [Misbehaviour] = [
            .none, .other(path: "/ConfigCom.cfg"), .stall(seconds: 2.5), .stall(seconds: 7200),
            .stall(seconds: 31_536_000), .trickle(bytesPerSecond: 1_000_000_000),
        ]
        for behaviour in Misbehaviour.catalogue + more {
            #expect(try Misbehaviour(parsing: behaviour.syntax) == behaviour, "\(behaviour.syntax)")
        }
    }

    @Test func statusesArgumentsAndAliases() throws {
        #expect(try Misbehaviour(parsing: "404") == .status(404))
        #expect(try Misbehaviour(parsing: "599") == .status(599))
        #expect(try Misbehaviour(parsing: "stall") == .stall(seconds: 3600))
        #expect(try Misbehaviour(parsing: "stall:0.5") == .stall(seconds: 0.5))
        #expect(try Misbehaviour(parsing: "trickle") == .trickle(bytesPerSecond: 16))
        #expect(try Misbehaviour(parsing: "TRICKLE:100") == .trickle(bytesPerSecond: 100))
        #expect(try Misbehaviour(parsing: "auth") == .authForever)
    }

    @Test(arguments: [
        "200", "302", "600", "", "stall:-1", "stall:x", "trickle:0", "trickle:1.5", "404:2", "garbage:1", "other:",
        "other:relative", "teapot",
    ])
    func refusedBehavioursSayWhatIsAccepted(_ text: String) {
        #expect(throws: RuleError.self) { try Misbehaviour(parsing: text) }
    }

    /// Numbers past what the server can use were accepted and crashed it (Int(1e30), UInt64 nanoseconds of 2e10 s):
    /// each is refused with the rule, the value and the range.
    @Test(arguments: [
        ("trickle:1e30", "from 1 to 1000000000"), ("trickle:99999999999999999999", "from 1 to 1000000000"),
        ("trickle:1000000001", "from 1 to 1000000000"), ("trickle:inf", "from 1 to 1000000000"),
        ("trickle:nan", "from 1 to 1000000000"), ("trickle:-5", "from 1 to 1000000000"),
        ("stall:2e10", "at most 31536000"), ("stall:1e300", "at most 31536000"), ("stall:inf", "at most 31536000"),
        ("stall:nan", "at most 31536000"), ("stall:0", "more than 0"), ("99999999999999999999", "400 to 599"),
        ("600", "400 to 599"), ("200", "400 to 599"),
    ])
    func outOfRangeNumbersNameTheRuleTheValueAndTheRange(_ behaviour: String, _ range: String) {
        let text = "/KX*=" + behaviour
        do {
            let rule = try Rule(parsing: text)
            Issue.record("\(text) was accepted as \(rule)")
        } catch {
            #expect("\(error)".hasPrefix("\"\(text)\": "), "\(error)")
            #expect("\(error)".contains(behaviour + " is out of range"), "\(error)")
            #expect("\(error)".contains(range), "\(error)")
        }
    }

    @Test func ruleSyntaxAndErrors() throws {
        let rule = try Rule(parsing: "/Config*.cfg=close-mid-body")
        #expect(rule.pattern == "/Config*.cfg")
        #expect(rule.behaviour == .closeMidBody)
        #expect(rule.description == "/Config*.cfg=close-mid-body")
        #expect(try Rule(parsing: "*=503").behaviour == .status(503))
        for bad in ["/x.cfg", "=404", "x.cfg=404", "/x.cfg=nope"] {
            do {
                _ = try Rule(parsing: bad)
                Issue.record("\(bad) was accepted")
            } catch {
                #expect("\(error)".contains(bad.split(separator: "=").last.map(String.init) ?? bad), "\(error)")
            }
        }
    }

    @Test func globsMatchTheWholePath() throws {
        let rule = Rule(pattern: "/Config*.cfg", behaviour: .garbage)
        #expect(rule.matches("/Config0080F0C571EB.cfg"))
        #expect(rule.matches("/Config.cfg"))
        #expect(!rule.matches("/Config0080F0C571EB.cfg.enc"))
        #expect(!rule.matches("/prov/Config1.cfg"))
        #expect(Rule(pattern: "*", behaviour: .garbage).matches("/anything/at/all"))
        #expect(Rule(pattern: "/Config????????????.cfg", behaviour: .garbage).matches("/Config0080F0C571EB.cfg"))
        #expect(!Rule(pattern: "/Config????????????.cfg", behaviour: .garbage).matches("/ConfigCom.cfg"))
        #expect(Rule(pattern: "/a*b*c", behaviour: .garbage).matches("/aXbYbZc"))
        // No exponential backtracking on a hostile pattern.
        let long = "/" + String(repeating: "a", count: 5000)
        #expect(!Rule(pattern: "/" + String(repeating: "*a", count: 50) + "b", behaviour: .garbage).matches(long))
    }

    @Test func macRangesAndOtherPhonesFiles() throws {
        let path = "/Config0080F0C571EB.cfg"
        let range = try #require(ServedTree.macRange(in: path))
        #expect(path[range] == "0080F0C571EB")
        #expect(ServedTree.macRange(in: "/ConfigCom.cfg") == nil)
        #expect(ServedTree.macRange(in: "/0080F0C571EB0.cfg") == nil)  // 13 digits: not a MAC
    }
}
