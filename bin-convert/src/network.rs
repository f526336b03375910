//! The network the cloud gave this boot, read from the live system: the
//! default route from `/proc/net/route`, the interface's address from `ip -o -4
//! addr`, its MAC from `/sys/class/net`, name servers from resolv.conf
//! (systemd-resolved's upstream list when the stub is in use). Ubuntu reads it
//! in START's preflight, in SETUP_INSTALLER and on every UBUNTU boot; what it
//! reads becomes the appliance's settings ([`crate::settings`]).

use std::net::{IpAddr, Ipv4Addr};

use crate::system::System;

/// The network settings the cloud gave the node (captured in Ubuntu, applied to
/// the appliance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub nameservers: Vec<IpAddr>,
}

/// Reads this boot's network; the error says what is missing, in one line.
pub fn network(system: &System) -> Result<Network, String> {
    let routes = system
        .read_to_string("/proc/net/route")
        .map_err(|error| format!("cannot read /proc/net/route: {error}"))?;
    let (interface, gateway) = default_route(&routes)
        .ok_or_else(|| "there is no default route (no network captured)".to_owned())?;
    let addresses = system
        .run("ip", &["-o", "-4", "addr", "show", "dev", &interface])
        .map_err(|error| format!("cannot read the address of {interface}: {error:#}"))?;
    let (address, prefix) = ipv4_address(&addresses).ok_or_else(|| {
        format!("{interface} (the default route's interface) has no IPv4 address")
    })?;
    let mac = system
        .read_to_string(format!("/sys/class/net/{interface}/address"))
        .map_err(|error| format!("cannot read the MAC address of {interface}: {error}"))?
        .trim()
        .to_ascii_lowercase();
    // No resolv.conf is no name server; one that cannot be read is refused
    // (the appliance would be set up without the servers it has).
    let resolv_conf = system
        .read_if_exists("/etc/resolv.conf")
        .map_err(|error| format!("{error:#}"))?
        .unwrap_or_default();
    let mut nameservers = nameservers_of(&resolv_conf);
    // systemd-resolved's stub listens on 127.0.0.53; the appliance needs the
    // upstream servers it forwards to.
    if nameservers.iter().all(IpAddr::is_loopback)
        && let Ok(upstream) = system.read_to_string("/run/systemd/resolve/resolv.conf")
    {
        nameservers = nameservers_of(&upstream);
    }
    nameservers.retain(|server| !server.is_loopback());
    if nameservers.is_empty() {
        return Err(
            "no name server in /etc/resolv.conf (or systemd-resolved's upstream list)".to_owned(),
        );
    }
    Ok(Network {
        interface,
        address,
        prefix,
        gateway,
        mac,
        nameservers,
    })
}

/// Where this boot's DHCP lease of `interface` is, if its address came by
/// DHCP: systemd-networkd's lease file (Ubuntu's cloud images, netplan's
/// default renderer), or dhclient's (ifupdown). `None` when neither has one:
/// the address was set statically (or by a client xitc does not know).
pub fn dhcp_lease(system: &System, interface: &str) -> Option<String> {
    let networkd = system
        .read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .ok()
        .map(|index| format!("/run/systemd/netif/leases/{}", index.trim()));
    networkd
        .into_iter()
        .chain([
            format!("/var/lib/dhcp/dhclient.{interface}.leases"),
            format!("/var/lib/dhclient/dhclient-{interface}.leases"),
        ])
        .find(|path| {
            system
                .metadata(path)
                .is_ok_and(|meta| meta.is_file() && meta.len() > 0)
        })
}

/// The dotted netmask of a prefix length (24 → 255.255.255.0).
pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0),
    )
}

/// The interface and gateway of the default route in `/proc/net/route`.
pub fn default_route(routes: &str) -> Option<(String, Ipv4Addr)> {
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (interface, destination, gateway, mask) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(7)?,
        );
        if *destination != "00000000" || *mask != "00000000" {
            return None;
        }
        // The kernel prints the address as a host-order (little-endian) hex word.
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        Some((
            (*interface).to_owned(),
            Ipv4Addr::from(gateway.swap_bytes()),
        ))
    })
}

/// The first `inet A.B.C.D/N` in `ip -o -4 addr` output.
pub fn ipv4_address(output: &str) -> Option<(Ipv4Addr, u8)> {
    output.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        fields.find(|field| *field == "inet")?;
        let (address, prefix) = fields.next()?.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|prefix| *prefix <= 32)?;
        Some((address.parse().ok()?, prefix))
    })
}

/// The `nameserver` addresses of a resolv.conf, in order, without repeats.
pub fn nameservers_of(resolv_conf: &str) -> Vec<IpAddr> {
    let mut servers: Vec<IpAddr> = Vec::new();
    for line in resolv_conf.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some("nameserver")
            && let Some(Ok(server)) = fields.next().map(str::parse::<IpAddr>)
            && !servers.contains(&server)
        {
            servers.push(server);
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dhcp_lease_is_networkds_or_dhclients_and_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        let put = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        assert_eq!(dhcp_lease(&system, "ens3"), None, "no lease anywhere");
        put("sys/class/net/ens3/ifindex", "2\n");
        put("run/systemd/netif/leases/2", "");
        assert_eq!(
            dhcp_lease(&system, "ens3"),
            None,
            "an empty file is no lease"
        );
        put("var/lib/dhcp/dhclient.ens3.leases", "lease {\n}\n");
        assert_eq!(
            dhcp_lease(&system, "ens3").as_deref(),
            Some("/var/lib/dhcp/dhclient.ens3.leases")
        );
        put("run/systemd/netif/leases/2", "ADDRESS=10.0.2.15\n");
        assert_eq!(
            dhcp_lease(&system, "ens3").as_deref(),
            Some("/run/systemd/netif/leases/2")
        );
        assert_eq!(
            dhcp_lease(&system, "eth1"),
            None,
            "another NIC's lease is not this one's"
        );
    }

    #[test]
    fn netmasks_of_prefixes() {
        for (prefix, mask) in [
            (0, "0.0.0.0"),
            (8, "255.0.0.0"),
            (24, "255.255.255.0"),
            (31, "255.255.255.254"),
            (32, "255.255.255.255"),
        ] {
            assert_eq!(netmask(prefix).to_string(), mask);
        }
    }

    #[test]
    fn the_default_route_from_proc() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                      eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                      eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            default_route(routes),
            Some(("eth0".into(), Ipv4Addr::new(192, 168, 0, 1)))
        );
        assert_eq!(default_route("Iface\tDestination\n"), None);
    }

    #[test]
    fn addresses_and_name_servers() {
        let ip = "2: eth0    inet 203.0.113.7/24 brd 203.0.113.255 scope global eth0\\       valid_lft forever\n";
        assert_eq!(ipv4_address(ip), Some((Ipv4Addr::new(203, 0, 113, 7), 24)));
        assert_eq!(ipv4_address("2: eth0 inet6 fe80::1/64 scope link\n"), None);
        let resolv = "# generated\nsearch example\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n\
                      nameserver 8.8.8.8\noptions edns0\n";
        assert_eq!(
            nameservers_of(resolv),
            [
                "8.8.8.8".parse::<IpAddr>().unwrap(),
                "2001:4860:4860::8888".parse().unwrap()
            ]
        );
    }
}
