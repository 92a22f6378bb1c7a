//! Well-known service names for common TCP ports, shown after `Port N open`.

/// Common ports and the service usually found there (IANA names, as nmap prints them).
const SERVICES: &[(u16, &str)] = &[
    (7, "echo"),
    (21, "ftp"),
    (22, "ssh"),
    (23, "telnet"),
    (25, "smtp"),
    (53, "domain"),
    (80, "http"),
    (110, "pop3"),
    (111, "rpcbind"),
    (135, "msrpc"),
    (139, "netbios-ssn"),
    (143, "imap"),
    (389, "ldap"),
    (443, "https"),
    (445, "microsoft-ds"),
    (465, "smtps"),
    (587, "submission"),
    (631, "ipp"),
    (993, "imaps"),
    (995, "pop3s"),
    (1433, "ms-sql-s"),
    (1521, "oracle"),
    (1883, "mqtt"),
    (2049, "nfs"),
    (3000, "ppp"),
    (3306, "mysql"),
    (3389, "ms-wbt-server"),
    (5432, "postgresql"),
    (5672, "amqp"),
    (5900, "vnc"),
    (6379, "redis"),
    (6443, "sun-sr-https"),
    (6667, "irc"),
    (8080, "http-proxy"),
    (8443, "https-alt"),
    (9000, "cslistener"),
    (9090, "zeus-admin"),
    (9200, "wap-wsp"),
    (11211, "memcache"),
    (27017, "mongod"),
];

/// The usual service on `port`, if it is a well-known one.
///
/// ```
/// assert_eq!(tcpkit::scan::service_name(22), Some("ssh"));
/// assert_eq!(tcpkit::scan::service_name(40000), None);
/// ```
pub fn service_name(port: u16) -> Option<&'static str> {
    SERVICES
        .binary_search_by_key(&port, |&(p, _)| p)
        .ok()
        .map(|i| SERVICES[i].1)
}
