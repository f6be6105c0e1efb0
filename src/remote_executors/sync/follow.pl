# remote-executors: follow the files of every session of one executor while
# their CLIs run, and send each byte appended to them, framed, to the local
# side (see _follow_channel.py). One process per executor however many
# sessions it runs; needs only what perl-base has.
#
# Arguments: TICK_MS MODE
#   TICK_MS  the poll interval while files are changing (idle: 4x)
#   MODE     "auto": wait on inotifywait where it is installed (a look per
#            event, and one a second anyway), else poll; "poll": always poll
# stdin, one command per line:
#   "A <tag> <maxfile> <project> <sid> <config>"  follow a session: its files
#            are CONFIG/projects/PROJECT/SID.jsonl and every file under
#            .../PROJECT/SID/; CONFIG is "-" for the CLI's default, else the
#            directory in hex. A file larger than MAXFILE is announced (B),
#            never sent. Then "SIZE REL" per file the local side holds, and ".".
#   "R <tag>"        stop following that session
#   "F <tag> <seq>"  send everything of that session on disk now; "S" answers
#   End of stdin stops the follower.
# stdout, frames only:
#   "L 2 <inotify|poll>\n"                    hello, once
#   "H <tag> <len> <rel>\n" + len bytes       the file's first bytes, sent before
#                                             the first data of a file the local
#                                             side holds
#   "D <tag> <offset> <len> <rel>\n" + bytes  the file's bytes [offset, offset+len)
#   "T <tag> <size> <rel>\n"                  the file shrank below what was sent
#   "B <tag> <size> <rel>\n"                  over MAXFILE: not sent
#   "E <tag> <rel>\n"                         unreadable
#   "S <tag> <seq>\n"                         everything on disk at "F" is sent
use strict;
use warnings;
# Sub-second clocks where Time::HiRes is there; perl-base alone (the perl of
# slim container images) lacks it, and whole seconds still work, only coarser.
BEGIN { eval { require Time::HiRes; Time::HiRes->import(qw(stat lstat time)); 1 } }
use Fcntl qw(SEEK_SET);

my ($tick_ms, $mode) = @ARGV;
my $CHUNK = 262144;    # bytes per data frame
my $WINDOW = 4096;     # overlap re-sent before the first new byte of a known file
my $RESCAN = 0.5;      # seconds between full directory listings
$SIG{PIPE} = sub { exit 0 };    # the local side went away
$SIG{TERM} = sub { exit 0 };

my %S;    # tag -> the session: base, sid, main, maxfile, off, dead, dirs, hot, ...

sub out { my $data = shift; while (length $data) { my $n = syswrite(STDOUT, $data); exit 0 unless $n; substr($data, 0, $n) = ''; } }

# Waiting: inotifywait where it is installed (one per project dir for the
# transcripts, one per session dir and below once it exists), else a short poll.
my $inw;
if (($mode // 'auto') eq 'auto') {
    for my $dir (split /:/, $ENV{PATH} // '') {
        if (-x "$dir/inotifywait") { $inw = "$dir/inotifywait"; last }
    }
}
my %watch;        # dir -> [pid, handle, unread output, recursive]
my $grace = 0;    # until then, poll too: a new watch may not be set up yet
my $relist = 0;   # a directory appeared: list again now
sub watch_dir {
    my ($dir, $recursive) = @_;
    return if !$inw || $watch{$dir} || !-d $dir;
    my @opts = ('-mq', '-e', 'modify,create,moved_to', '--format', '%e %w%f');
    push @opts, '-r' if $recursive;
    my $pid = open(my $fh, '-|', $inw, @opts, '--', $dir);
    unless ($pid) { $inw = undef; return }
    $watch{$dir} = [$pid, $fh, '', $recursive];
    $grace = time + 0.3;
}
sub unwatch_dir { my $w = delete $watch{$_[0]} or return; kill 'TERM', $w->[0]; close($w->[1]) }
sub unwatch { unwatch_dir($_) for keys %watch }
END { unwatch() }
sub wanted_dirs { my %d; for my $s (values %S) { $d{$s->{base}} = 1; $d{"$s->{base}/$s->{sid}"} = 1 } return \%d }
sub watched {
    return 0 unless $inw;
    for my $s (values %S) {
        return 0 unless $watch{$s->{base}};
        return 0 if !$watch{"$s->{base}/$s->{sid}"} && -d "$s->{base}/$s->{sid}";
    }
    return time >= $grace;
}
sub event {
    my ($line) = @_;
    my ($what, $path) = split / /, $line, 2;
    return unless defined $path;
    for my $s (values %S) {
        next unless index($path, "$s->{base}/") == 0;
        my $rel = substr($path, length("$s->{base}/"));
        next unless $rel eq $s->{main} || index($rel, "$s->{sid}/") == 0;
        $s->{poked} = 1;
        if ($what =~ /ISDIR/) { $relist = 1; next }
        next if $rel =~ m{(\A|/)\.} || $rel =~ /[\r]|\.conflict-/;
        if (!exists $s->{off}{$rel}) { next unless lstat($path) && -f _; $s->{off}{$rel} = 0 }
        $s->{hot}{$rel} = time;
    }
}

# Listing: the transcript, and every file under SID/ (a directory is read
# again when its mtime moves, and every RESCAN seconds anyway).
sub list_dir {
    my ($s, $dir, $force) = @_;
    my $path = "$s->{base}/$dir";
    my @st = stat($path);
    return unless @st;
    my $stamp = "$st[9]/$st[10]";
    return if !$force && defined $s->{dirs}{$dir} && $s->{dirs}{$dir} eq $stamp;
    $s->{dirs}{$dir} = $stamp;
    opendir(my $dh, $path) or return;
    my @names = grep { !/\A\./ && !/[\n\r]/ && !/\.conflict-/ } readdir($dh);
    closedir($dh);
    for my $name (@names) {
        my $rel = "$dir/$name";
        next unless lstat("$s->{base}/$rel");    # symlinks are never followed
        if (-d _) { list_dir($s, $rel, $force) }
        elsif (-f _ && !exists $s->{off}{$rel}) { $s->{off}{$rel} = 0; $s->{hot}{$rel} = time }
    }
}
sub list_all {
    my ($s, $force) = @_;
    $s->{off}{$s->{main}} //= 0;
    list_dir($s, $s->{sid}, $force) if -d "$s->{base}/$s->{sid}";
    $s->{listed_at} = time if $force;
}

# Sending: whatever a file holds past what was sent.
sub send_file {
    my ($s, $rel) = @_;
    return 0 if $s->{dead}{$rel};
    my $tag = $s->{tag};
    my $path = "$s->{base}/$rel";
    my @st = stat($path);
    return 0 unless @st;
    my $size = $st[7];
    my $at = $s->{off}{$rel} // 0;
    return 0 if $size == $at;
    if ($size < $at) { out("T $tag $size $rel\n"); $s->{dead}{$rel} = 1; return 0 }
    if ($size > $s->{maxfile}) { out("B $tag $size $rel\n"); $s->{dead}{$rel} = 1; return 0 }
    my $fh;
    unless (open($fh, '<:raw', $path)) { out("E $tag $rel\n"); $s->{dead}{$rel} = 1; return 0 }
    my $known = $s->{known}{$rel};
    if (!$s->{headed}{$rel} && $known) {
        my $want = $known < $WINDOW ? $known : $WINDOW;
        my $n = read($fh, my $head, $want) // 0;
        out("H $tag $n $rel\n$head");
    }
    $s->{headed}{$rel} = 1;
    my $sent = 0;
    seek($fh, $at, SEEK_SET);
    while ($at < $size) {
        my $want = $size - $at < $CHUNK ? $size - $at : $CHUNK;
        my $n = read($fh, my $buf, $want);
        last unless $n;
        out("D $tag $at $n $rel\n$buf");
        $at += $n;
        $sent += $n;
    }
    close($fh);
    $s->{off}{$rel} = $at;
    $s->{hot}{$rel} = time if $sent;
    return $sent;
}

# One look at a session: its hot files (and the transcript) every tick, the
# others a slice at a time.
sub look {
    my ($s, $all) = @_;    # 1: send everything; 2: list everything, send what is busy
    list_all($s, $all || time - $s->{listed_at} >= $RESCAN);
    my $now = time;
    my $sent = 0;
    my $off = $s->{off};
    if ($all == 1) {
        for my $rel (sort keys %$off) { $sent += send_file($s, $rel) }
        return $sent;
    }
    my $hot = $s->{hot};
    my @files = keys %$off;
    for my $rel ($s->{main}, grep { $hot->{$_} && $now - $hot->{$_} < 5 } @files) {
        $sent += send_file($s, $rel);
    }
    my $cold = $s->{cold};
    @$cold = grep { !$hot->{$_} || $now - $hot->{$_} >= 5 } @files if $s->{cold_at} >= @$cold;
    $s->{cold_at} = 0 if $s->{cold_at} >= @$cold;
    my $stop = $s->{cold_at} + 200;
    while ($s->{cold_at} < @$cold && $s->{cold_at} < $stop) {
        $sent += send_file($s, $cold->[$s->{cold_at}++]);
    }
    return $sent;
}

# Commands. A session's listing follows its "A" line; it is followed from
# the "." on (re-sending a window before each local end, checked there, and
# each file's head).
my $inbuf = '';
my $adding;    # the session whose listing is being read
sub read_stdin {
    my $n = sysread(STDIN, my $got, 65536);
    exit 0 unless $n;    # stdin closed: the last session ended
    $inbuf .= $got;
    exit 0 if length($inbuf) > 1 << 26;    # not a local side that we know
}
sub command {
    my ($line) = @_;
    if ($adding) {
        if ($line eq '.') {
            my $s = $adding;
            undef $adding;
            for my $rel (keys %{$s->{known}}) {
                my $k = $s->{known}{$rel};
                $s->{off}{$rel} = $k > $WINDOW ? $k - $WINDOW : 0;
            }
            $S{$s->{tag}} = $s;
        } elsif ($line =~ /\A([0-9]{1,20}) (.+)\z/s) {
            $adding->{known}{$2} = $1 + 0;
        }
    } elsif ($line =~ /\AA ([0-9]{1,9}) ([0-9]{1,20}) ([A-Za-z0-9._-]{1,255}) ([A-Za-z0-9_-]{1,128}) (-|(?:[0-9a-f]{2})+)\z/) {
        my ($tag, $maxfile, $project, $sid, $config) = ($1, $2, $3, $4, $5);
        return if $project eq '.' || $project eq '..';
        $config = $config eq '-' ? ($ENV{CLAUDE_CONFIG_DIR} || "$ENV{HOME}/.claude") : pack('H*', $config);
        $adding = { tag => $tag, maxfile => $maxfile, sid => $sid, main => "$sid.jsonl",
                    base => "$config/projects/$project", known => {}, off => {}, dead => {},
                    dirs => {}, hot => {}, headed => {}, cold => [], cold_at => 0, listed_at => 0 };
    } elsif ($line =~ /\AR ([0-9]{1,9})\z/) {
        delete $S{$1};
        # A project dir stays watched for the next session there (the follower
        # may wait for one): that session then starts no inotifywait mid-turn.
        # A few at most; a session's own dir goes.
        my $want = wanted_dirs();
        my @idle = grep { !$want->{$_} } keys %watch;
        my @projects = grep { !$watch{$_}[3] } @idle;
        unwatch_dir($_) for grep { $watch{$_}[3] || @projects > 4 } @idle;
    } elsif ($line =~ /\AF ([0-9]{1,9}) ([0-9]{1,20})\z/) {
        look($S{$1}, 1) if $S{$1};
        out("S $1 $2\n");
    }
}

out("L 2 " . ($inw ? 'inotify' : 'poll') . "\n");

# Each session is looked at on its own schedule: watched, when an event
# named it (and once a second anyway); polled, every tick while its files
# change, every 4 ticks once it has been quiet ~1 s. So a hundred idle
# sessions cost a hundred looks a second or so, not thousands.
my $iter = 0;
my $busy = 0;    # some polled session changed lately: tick fast
while (1) {
    for my $s (values %S) {
        watch_dir($s->{base}, 0);
        watch_dir("$s->{base}/$s->{sid}", 1);
    }
    my $rin = '';
    vec($rin, fileno(STDIN), 1) = 1;
    vec($rin, fileno($_->[1]), 1) = 1 for values %watch;
    # Nothing to follow (waiting for the next session): only stdin. Watched:
    # a look per event, and one a second anyway. Polled: busy files every
    # tick; after ~1 s of quiet, every 4 ticks.
    my $watched = %S && watched();
    my $wait = !%S ? undef : $watched ? 1 : $tick_ms / 1000 * ($busy ? 1 : 4);
    my $ready = select(my $rout = $rin, undef, undef, $wait);
    if ($ready > 0) {
        for my $dir (keys %watch) {
            my $w = $watch{$dir};
            next unless $w && vec($rout, fileno($w->[1]), 1);
            my $n = sysread($w->[1], my $got, 65536);
            unless ($n) {    # it died (e.g. out of watches): poll from now on
                unwatch();
                $inw = undef;
                last;
            }
            $w->[2] .= $got;
            while ($w->[2] =~ s/\A([^\n]*)\n//) { event($1) }
            $w->[2] = '' if length($w->[2]) > 65536;
        }
    }
    if ($ready > 0 && vec($rout, fileno(STDIN), 1)) {
        read_stdin();
        while ($inbuf =~ s/\A([^\n]*)\n//) { command($1) }
    }
    $iter++;
    my $was_busy = $busy;
    $busy = 0;
    my $now = time;
    for my $s (values %S) {
        my $quiet = ($s->{idle} //= 0) > 50;
        if ($watched) {
            next unless $s->{poked} || $relist || $now - ($s->{looked} // 0) >= 1;
        } elsif ($quiet && $was_busy && !$relist && $iter % 4) {
            next;    # quiet while others change (short ticks): every 4th
        }
        $s->{poked} = 0;
        $s->{looked} = $now;
        $s->{idle} = look($s, $relist ? 2 : 0) ? 0 : $s->{idle} + 1;
        $busy ||= $s->{idle} <= 50;
    }
    $relist = 0;
}
