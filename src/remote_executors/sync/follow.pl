# remote-executors: follow one session's files while its CLI runs, and send
# every byte appended to them, framed, to the local side (see _follow.py).
# Started by _follower.py; needs only what perl-base has.
#
# Arguments: BASE SID MAXFILE TICK_MS MODE
#   BASE     the project dir (…/projects/<name>)
#   SID      the session id: follows BASE/SID.jsonl and every file under BASE/SID/
#   MAXFILE  a file larger than this is announced (B), never sent
#   TICK_MS  the poll interval while files are changing (idle: 4x)
#   MODE     "auto": wait on inotifywait where it is installed (a look per
#            event, and one a second anyway), else poll; "poll": always poll
# stdin: "SIZE REL" per file the local side holds, then "."; afterwards
#   "F SEQ" asks for everything on disk now, answered by "S SEQ" once sent.
#   End of stdin stops the follower.
# stdout, frames only:
#   "L 1 <inotify|poll>\n"               hello, once
#   "H <len> <rel>\n" + len bytes         the file's first bytes, sent before the
#                                         first data of a file the local side holds
#   "D <offset> <len> <rel>\n" + len bytes the file's bytes [offset, offset+len)
#   "T <size> <rel>\n"                    the file shrank below what was sent
#   "B <size> <rel>\n"                    over MAXFILE: not sent
#   "E <rel>\n"                           unreadable
#   "S <seq>\n"                           everything on disk at "F <seq>" is sent
use strict;
use warnings;
# Sub-second clocks where Time::HiRes is there; perl-base alone (the perl of
# slim container images) lacks it, and whole seconds still work, only coarser.
BEGIN { eval { require Time::HiRes; Time::HiRes->import(qw(stat lstat time)); 1 } }
use Fcntl qw(SEEK_SET);

my ($base, $sid, $maxfile, $tick_ms, $mode) = @ARGV;
my $CHUNK = 262144;    # bytes per data frame
my $WINDOW = 4096;     # overlap re-sent before the first new byte of a known file
my $RESCAN = 0.5;      # seconds between full directory listings
$SIG{PIPE} = sub { exit 0 };    # the local side went away
$SIG{TERM} = sub { exit 0 };

my (%off, %dead, %dirs, %hot, @cold);
my $main = "$sid.jsonl";

sub out { my $data = shift; while (length $data) { my $n = syswrite(STDOUT, $data); exit 0 unless $n; substr($data, 0, $n) = ''; } }

# The local side's sizes: where each known file's data starts.
my $inbuf = '';
sub read_stdin {
    my $n = sysread(STDIN, my $got, 65536);
    exit 0 unless $n;    # stdin closed: the session ended
    $inbuf .= $got;
    exit 0 if length($inbuf) > 1 << 26;    # not a local side that we know
}
my %known;
while (1) {
    if ($inbuf =~ s/\A([^\n]*)\n//) {
        my $line = $1;
        last if $line eq '.';
        if ($line =~ /\A([0-9]{1,20}) (.+)\z/s) { $known{$2} = $1 + 0 }
        next;
    }
    read_stdin();
}
for my $rel (keys %known) {
    # Re-send a window before the local end, checked there; the head too.
    $off{$rel} = $known{$rel} > $WINDOW ? $known{$rel} - $WINDOW : 0;
}

# Waiting: inotifywait where it is installed (one on BASE for the transcript,
# one on BASE/SID and below once it exists), else a short poll.
my $inw;
if (($mode // 'auto') eq 'auto') {
    for my $dir (split /:/, $ENV{PATH} // '') {
        if (-x "$dir/inotifywait") { $inw = "$dir/inotifywait"; last }
    }
}
my %watch;        # dir -> [pid, handle, unread output]
my $grace = 0;    # until then, poll too: a new watch may not be set up yet
my $relist = 0;   # a directory appeared: list again now
sub watch_dir {
    my ($dir, $recursive) = @_;
    return if !$inw || $watch{$dir} || !-d $dir;
    my @opts = ('-mq', '-e', 'modify,create,moved_to', '--format', '%e %w%f');
    push @opts, '-r' if $recursive;
    my $pid = open(my $fh, '-|', $inw, @opts, '--', $dir);
    unless ($pid) { $inw = undef; return }
    $watch{$dir} = [$pid, $fh, ''];
    $grace = time + 0.3;
}
sub unwatch { for my $w (values %watch) { kill 'TERM', $w->[0]; close($w->[1]) } %watch = () }
END { unwatch() }
sub watched {
    return 0 unless $inw && $watch{$base};
    return 0 if !$watch{"$base/$sid"} && -d "$base/$sid";
    return time >= $grace;
}
sub event {
    my ($line) = @_;
    my ($what, $path) = split / /, $line, 2;
    return unless defined $path && index($path, "$base/") == 0;
    my $rel = substr($path, length("$base/"));
    return unless $rel eq $main || index($rel, "$sid/") == 0;
    if ($what =~ /ISDIR/) { $relist = 1; return }
    return if $rel =~ m{(\A|/)\.} || $rel =~ /[\r]|\.conflict-/;
    if (!exists $off{$rel}) { return unless lstat($path) && -f _; $off{$rel} = 0 }
    $hot{$rel} = time;
}

out("L 1 " . ($inw ? 'inotify' : 'poll') . "\n");

# Listing: the transcript, and every file under SID/ (a directory is read
# again when its mtime moves, and every RESCAN seconds anyway).
my $listed_at = 0;
sub list_dir {
    my ($dir, $force) = @_;
    my $path = "$base/$dir";
    my @st = stat($path);
    return unless @st;
    my $stamp = "$st[9]/$st[10]";
    return if !$force && defined $dirs{$dir} && $dirs{$dir} eq $stamp;
    $dirs{$dir} = $stamp;
    opendir(my $dh, $path) or return;
    my @names = grep { !/\A\./ && !/[\n\r]/ && !/\.conflict-/ } readdir($dh);
    closedir($dh);
    for my $name (@names) {
        my $rel = "$dir/$name";
        next unless lstat("$base/$rel");    # symlinks are never followed
        if (-d _) { list_dir($rel, $force) }
        elsif (-f _ && !exists $off{$rel}) { $off{$rel} = 0; $hot{$rel} = time }
    }
}
sub list_all {
    my ($force) = @_;
    $off{$main} //= 0;
    list_dir($sid, $force) if -d "$base/$sid";
    $listed_at = time if $force;
}

# Sending: whatever a file holds past what was sent.
my %headed;
sub send_file {
    my ($rel) = @_;
    return 0 if $dead{$rel};
    my @st = stat("$base/$rel");
    return 0 unless @st;
    my $size = $st[7];
    my $at = $off{$rel} // 0;
    return 0 if $size == $at;
    if ($size < $at) { out("T $size $rel\n"); $dead{$rel} = 1; return 0 }
    if ($size > $maxfile) { out("B $size $rel\n"); $dead{$rel} = 1; return 0 }
    my $fh;
    unless (open($fh, '<:raw', "$base/$rel")) { out("E $rel\n"); $dead{$rel} = 1; return 0 }
    if (!$headed{$rel} && exists $known{$rel} && $known{$rel} > 0) {
        my $want = $known{$rel} < $WINDOW ? $known{$rel} : $WINDOW;
        my $n = read($fh, my $head, $want) // 0;
        out("H $n $rel\n$head");
    }
    $headed{$rel} = 1;
    my $sent = 0;
    seek($fh, $at, SEEK_SET);
    while ($at < $size) {
        my $want = $size - $at < $CHUNK ? $size - $at : $CHUNK;
        my $n = read($fh, my $buf, $want);
        last unless $n;
        out("D $at $n $rel\n$buf");
        $at += $n;
        $sent += $n;
    }
    close($fh);
    $off{$rel} = $at;
    $hot{$rel} = time if $sent;
    return $sent;
}

# One look: hot files (and the transcript) every tick, the others a slice at a time.
my $cold_at = 0;
sub look {
    my ($all) = @_;    # 1: send everything; 2: list everything, send what is busy
    list_all($all || time - $listed_at >= $RESCAN);
    my $now = time;
    my $sent = 0;
    if ($all == 1) {
        for my $rel (sort keys %off) { $sent += send_file($rel) }
        return $sent;
    }
    my @files = keys %off;
    for my $rel ($main, grep { $hot{$_} && $now - $hot{$_} < 5 } @files) { $sent += send_file($rel) }
    @cold = grep { !$hot{$_} || $now - $hot{$_} >= 5 } @files if $cold_at >= @cold;
    $cold_at = 0 if $cold_at >= @cold;
    my $stop = $cold_at + 200;
    while ($cold_at < @cold && $cold_at < $stop) { $sent += send_file($cold[$cold_at++]) }
    return $sent;
}

my $idle = 0;
while (1) {
    watch_dir($base, 0);
    watch_dir("$base/$sid", 1);
    my $rin = '';
    vec($rin, fileno(STDIN), 1) = 1;
    vec($rin, fileno($_->[1]), 1) = 1 for values %watch;
    # Watched: a look per event, and one a second anyway. Polled: busy files
    # every tick; after ~1 s of quiet, every 4 ticks.
    my $wait = watched() ? 1 : $tick_ms / 1000 * ($idle > 50 ? 4 : 1);
    my $ready = select(my $rout = $rin, undef, undef, $wait);
    if ($ready > 0) {
        for my $dir (keys %watch) {
            my $w = $watch{$dir};
            next unless vec($rout, fileno($w->[1]), 1);
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
    my $flush;
    if ($ready > 0 && vec($rout, fileno(STDIN), 1)) {
        read_stdin();
        while ($inbuf =~ s/\A([^\n]*)\n//) {
            my $cmd = $1;
            $flush = $1 if $cmd =~ /\AF ([0-9]{1,20})\z/;
        }
    }
    if (defined $flush) {
        look(1);
        out("S $flush\n");
        next;
    }
    $idle = look($relist ? 2 : 0) ? 0 : $idle + 1;
    $relist = 0;
}
