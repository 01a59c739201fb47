/*
 * vigil-tray: the tray icon of vigil, for manual runs and editing jobs.
 *
 * A thin client of vigild's control socket (docs/protocol.md), like the
 * CLI: it shows what `status` and the events say, and asks the service to
 * run, cancel and import; it never opens the database and never runs a job
 * itself.  The icon is an Ayatana AppIndicator (StatusNotifierItem) when a
 * StatusNotifierItem host runs on the session bus, else an XEmbed status
 * icon (GtkStatusIcon) for the older system trays.
 *
 * When the service is unreachable the icon says "disconnected" and the
 * tray reconnects with a backoff (1 s doubling to 30 s).
 */
#include <errno.h>
#include <getopt.h>
#include <glib-unix.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libayatana-appindicator/app-indicator.h>

#include "common/log.h"
#include "agent/tray/tray.h"

#define TRAY_APP_ID		"org.vigil.Tray"
#define TRAY_CALL_TIMEOUT_MS	10000
#define TRAY_REFRESH_S		30

static const char *const tray_topics[] = { "progress", "run-started",
	"run-finished", "job-changed", "alert", NULL };

static void	tray_connect(struct tray *t);
static void	tray_disconnect(struct tray *t, const char *why);
static void	tray_show_state(struct tray *t);
static void	tray_menu_rebuild(struct tray *t);

static int64_t
tray_now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

void
tray_message(struct tray *t, GtkWindow *parent, GtkMessageType type,
    const char *title, const char *text)
{
	GtkWidget *d;

	(void)t;
	d = gtk_message_dialog_new(parent, GTK_DIALOG_DESTROY_WITH_PARENT,
	    type, GTK_BUTTONS_CLOSE, "%s", title);
	gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s",
	    text);
	gtk_window_set_title(GTK_WINDOW(d), title);
	g_signal_connect(d, "response", G_CALLBACK(gtk_widget_destroy), NULL);
	gtk_widget_show_all(d);
}

/* ---- the connection ---- */

static gboolean
tray_retry_cb(gpointer arg)
{
	struct tray *t = arg;

	t->retry_src = 0;
	tray_connect(t);
	return G_SOURCE_REMOVE;
}

static void
tray_notify(struct tray *t, const struct tray_notice *n)
{
	GNotification *gn;

	gn = g_notification_new(n->title);
	g_notification_set_body(gn, n->body);
	g_notification_set_priority(gn, n->urgent ?
	    G_NOTIFICATION_PRIORITY_URGENT : G_NOTIFICATION_PRIORITY_NORMAL);
	g_notification_set_default_action(gn, "app.history");
	g_application_send_notification(G_APPLICATION(t->app), n->id, gn);
	g_object_unref(gn);
	log_info("notice: %s: %s", n->title, n->body);
}

static gboolean
tray_refresh_cb(gpointer arg)
{
	struct tray *t = arg;

	t->refresh_src = 0;
	tray_refresh(t);
	return G_SOURCE_REMOVE;
}

/* A refresh soon, once for a burst of events. */
static void
tray_refresh_soon(struct tray *t)
{
	if (t->refresh_src != 0)
		g_source_remove(t->refresh_src);
	t->refresh_src = g_timeout_add(150, tray_refresh_cb, t);
}

static void
tray_handle_event(struct tray *t, json_t *ev)
{
	struct tray_notice n;
	const char *topic;
	bool refresh = false;

	topic = json_string_value(json_object_get(ev, "event"));
	if (topic == NULL)
		return;
	if (tray_model_event(t->model, topic, json_object_get(ev, "data"),
	    tray_now_ms(), &n, &refresh) == 1)
		tray_notify(t, &n);
	if (refresh)
		tray_refresh_soon(t);
	tray_show_state(t);
	tray_progress_update(t);
}

/* Handle every event already read or waiting on the socket. */
static void
tray_drain(struct tray *t)
{
	struct vg_err err;
	json_t *ev;

	while (t->client != NULL) {
		vg_err_clear(&err);
		if ((ev = client_next_event(t->client, 0, &err)) == NULL) {
			if (err.code != VG_OK && err.code != VG_ERR_CANCELLED)
				tray_disconnect(t, err.msg);
			return;
		}
		tray_handle_event(t, ev);
		json_decref(ev);
	}
}

static gboolean
tray_fd_cb(gint fd, GIOCondition cond, gpointer arg)
{
	struct tray *t = arg;

	(void)fd;
	(void)cond;
	tray_drain(t);
	if (t->client == NULL) {
		t->fd_watch = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
tray_drain_idle(gpointer arg)
{
	tray_drain(arg);
	return G_SOURCE_REMOVE;
}

static void
tray_disconnect(struct tray *t, const char *why)
{
	if (t->client != NULL) {
		log_warnx("lost the service: %s", why != NULL ? why : "");
		if (t->fd_watch != 0)
			g_source_remove(t->fd_watch);
		t->fd_watch = 0;
		client_free(t->client);
		t->client = NULL;
	}
	tray_model_set_connected(t->model, false, false, why);
	if (t->retry_src == 0) {
		t->model->retry_ms = tray_backoff_next(t->model->retry_ms);
		t->retry_src = g_timeout_add(t->model->retry_ms, tray_retry_cb,
		    t);
	}
	tray_show_state(t);
	tray_menu_rebuild(t);
	tray_progress_update(t);
}

static void
tray_connect(struct tray *t)
{
	struct vg_err err;
	json_t *hello;

	vg_err_clear(&err);
	if ((t->client = client_connect(t->socket_path, &err)) == NULL) {
		if (t->model->retry_ms == 0 || t->model->connected)
			log_warnx("%s", err.msg);
		tray_disconnect(t, err.msg);
		return;
	}
	if (client_subscribe(t->client, tray_topics, TRAY_CALL_TIMEOUT_MS,
	    &err) == -1) {
		tray_disconnect(t, err.msg);
		return;
	}
	hello = client_hello_result(t->client);
	tray_model_set_connected(t->model, true,
	    json_is_true(json_object_get(hello, "admin")), NULL);
	log_info("connected to %s at %s",
	    json_string_value(json_object_get(hello, "server")) != NULL ?
	    json_string_value(json_object_get(hello, "server")) : "vigild",
	    client_path(t->client));
	t->fd_watch = g_unix_fd_add(client_fd(t->client),
	    G_IO_IN | G_IO_HUP | G_IO_ERR, tray_fd_cb, t);
	tray_refresh(t);
}

int
tray_call(struct tray *t, const char *method, json_t *params,
    json_t **result, json_t **errobj, char *msg, size_t msglen)
{
	struct vg_err err;
	json_t *e = NULL;
	int rc;

	*result = NULL;
	if (errobj != NULL)
		*errobj = NULL;
	if (t->client == NULL) {
		snprintf(msg, msglen, "not connected to the backup service "
		    "(vigild); the tray keeps trying");
		json_decref(params);
		return -1;
	}
	vg_err_clear(&err);
	rc = client_call(t->client, method, params, result, &e,
	    TRAY_CALL_TIMEOUT_MS, &err);
	json_decref(params);
	/* Events that came while waiting: handle them from the loop. */
	g_idle_add(tray_drain_idle, t);
	if (rc == 0)
		return 0;
	if (rc == 1) {
		snprintf(msg, msglen, "%s", json_string_value(json_object_get(e,
		    "message")) != NULL ? json_string_value(json_object_get(e,
		    "message")) : err.msg);
		if (errobj != NULL)
			*errobj = e;
		else
			json_decref(e);
		return 1;
	}
	snprintf(msg, msglen, "%s", err.msg);
	tray_disconnect(t, err.msg);
	return -1;
}

void
tray_refresh(struct tray *t)
{
	json_t *res = NULL;
	char msg[1024];

	if (t->client == NULL)
		return;
	if (tray_call(t, "status", NULL, &res, NULL, msg, sizeof msg) == 0) {
		if (tray_model_set_status(t->model, res, tray_now_ms()) == -1)
			log_warnx("out of memory reading the status");
		json_decref(res);
	} else if (t->client != NULL)
		log_warnx("status: %s", msg);
	tray_show_state(t);
	tray_menu_rebuild(t);
	tray_progress_update(t);
	tray_history_reload(t);
}

static gboolean
tray_tick_cb(gpointer arg)
{
	struct tray *t = arg;

	if (t->client != NULL &&
	    (t->menu == NULL || !gtk_widget_get_visible(t->menu)))
		tray_refresh(t);
	return G_SOURCE_CONTINUE;
}

/* ---- the icon ---- */

static void
tray_show_state(struct tray *t)
{
	enum tray_state s = tray_model_state(t->model);
	const struct tray_run *r;
	char *tip, label[16];
	int pct = -1;

	tip = tray_model_tooltip_text(t->model);
	if (t->model->nruns > 0) {
		r = &t->model->runs[0];
		pct = tray_run_percent(r);
	}
	label[0] = '\0';
	if (s == TRAY_RUNNING && pct >= 0)
		snprintf(label, sizeof label, "%d%%", pct);
	if (t->indicator != NULL) {
		app_indicator_set_icon_full(t->indicator, tray_state_icon(s),
		    tip != NULL ? tip : "vigil");
		app_indicator_set_label(t->indicator, label, "100%");
		app_indicator_set_title(t->indicator, tip != NULL ? tip :
		    "vigil");
	}
	if (t->status_icon != NULL) {
		G_GNUC_BEGIN_IGNORE_DEPRECATIONS
		gtk_status_icon_set_from_icon_name(t->status_icon,
		    tray_state_icon(s));
		gtk_status_icon_set_tooltip_text(t->status_icon,
		    tip != NULL ? tip : "vigil");
		G_GNUC_END_IGNORE_DEPRECATIONS
	}
	if (!t->shown_once || t->shown != s)
		log_info("state: %s (%s)", tray_state_name(s),
		    tip != NULL ? tip : "");
	t->shown = s;
	t->shown_once = true;
	free(tip);
}

/* ---- the menu ---- */

struct tray_job_action {
	struct tray	*t;
	char		*run_name;
	int64_t		 run;		/* > 0: cancel this run */
};

static void
tray_job_action_free(gpointer data, GClosure *closure)
{
	struct tray_job_action *a = data;

	(void)closure;
	free(a->run_name);
	free(a);
}

static void
tray_run_now_cb(GtkMenuItem *item, gpointer arg)
{
	struct tray_job_action *a = arg;
	struct tray *t = a->t;
	json_t *params, *res = NULL;
	char msg[1024], title[256];
	int rc;

	(void)item;
	params = json_object();
	if (a->run > 0) {
		json_object_set_new(params, "run", json_integer(a->run));
		rc = tray_call(t, "cancel", params, &res, NULL, msg,
		    sizeof msg);
		snprintf(title, sizeof title, "Cannot cancel run %lld",
		    (long long)a->run);
	} else {
		json_object_set_new(params, "job", json_string(a->run_name));
		rc = tray_call(t, "run", params, &res, NULL, msg, sizeof msg);
		snprintf(title, sizeof title, "Cannot run %s", a->run_name);
		if (rc == 0)
			log_info("run %lld of %s: %s", (long long)
			    json_integer_value(json_object_get(res, "run")),
			    a->run_name, json_string_value(json_object_get(res,
			    "status")) != NULL ? json_string_value(
			    json_object_get(res, "status")) : "queued");
	}
	if (rc != 0)
		tray_message(t, NULL, GTK_MESSAGE_ERROR, title, msg);
	json_decref(res);
	tray_refresh_soon(t);
}

static void
tray_menu_add(GtkWidget *menu, GtkWidget *item)
{
	gtk_menu_shell_append(GTK_MENU_SHELL(menu), item);
	gtk_widget_show(item);
}

static GtkWidget *
tray_menu_label(GtkWidget *menu, const char *text)
{
	GtkWidget *item = gtk_menu_item_new_with_label(text);

	gtk_widget_set_sensitive(item, FALSE);
	tray_menu_add(menu, item);
	return item;
}

static void
tray_menu_separator(GtkWidget *menu)
{
	tray_menu_add(menu, gtk_separator_menu_item_new());
}

static void
tray_menu_job(struct tray *t, const struct tray_job *j)
{
	const struct tray_run *r = tray_model_run_of_job(t->model, j->id);
	struct tray_job_action *a;
	GtkWidget *item, *sub, *run;
	char text[512], when[64];
	int pct;

	if (r != NULL && (pct = tray_run_percent(r)) >= 0)
		snprintf(text, sizeof text, "%s: running %d%%", j->run_name,
		    pct);
	else if (j->running || r != NULL)
		snprintf(text, sizeof text, "%s: running", j->run_name);
	else
		snprintf(text, sizeof text, "%s: %s%s", j->run_name,
		    j->last_status != NULL ? j->last_status : "never run",
		    j->overdue ? ", overdue" : "");
	item = gtk_menu_item_new_with_label(text);
	sub = gtk_menu_new();

	if ((a = calloc(1, sizeof *a)) != NULL &&
	    (a->run_name = strdup(j->run_name)) != NULL) {
		a->t = t;
		a->run = r != NULL ? r->run : 0;
		run = gtk_menu_item_new_with_label(r != NULL ? "Cancel run" :
		    "Run now");
		g_signal_connect_data(run, "activate",
		    G_CALLBACK(tray_run_now_cb), a, tray_job_action_free, 0);
		tray_menu_add(sub, run);
	} else
		free(a);
	tray_menu_separator(sub);
	tray_format_time(j->last_run, when, sizeof when);
	snprintf(text, sizeof text, "Last run: %s%s%s", j->last_status != NULL ?
	    j->last_status : "never", j->last_run != NULL ? ", " : "",
	    j->last_run != NULL ? when : "");
	tray_menu_label(sub, text);
	if (j->next_run != NULL) {
		tray_format_time(j->next_run, when, sizeof when);
		snprintf(text, sizeof text, "Next run: %s", when);
	} else
		snprintf(text, sizeof text, "Next run: only when run by hand");
	tray_menu_label(sub, text);
	if (j->overdue)
		tray_menu_label(sub, "Overdue: no successful run within its "
		    "warn-after time");
	gtk_menu_item_set_submenu(GTK_MENU_ITEM(item), sub);
	gtk_widget_set_sensitive(item, t->client != NULL);
	tray_menu_add(t->menu, item);
}

static void
tray_progress_cb(GtkMenuItem *item, gpointer arg)
{
	(void)item;
	tray_progress_show(arg);
}

static void
tray_history_cb(GtkMenuItem *item, gpointer arg)
{
	(void)item;
	tray_history_show(arg);
}

static void
tray_edit_cb(GtkMenuItem *item, gpointer arg)
{
	(void)item;
	tray_editor_show(arg);
}

static void
tray_quit_cb(GtkMenuItem *item, gpointer arg)
{
	struct tray *t = arg;

	(void)item;
	g_application_quit(G_APPLICATION(t->app));
}

static GtkWidget *
tray_menu_action(struct tray *t, const char *label, GCallback cb)
{
	GtkWidget *item = gtk_menu_item_new_with_label(label);

	g_signal_connect(item, "activate", cb, t);
	tray_menu_add(t->menu, item);
	return item;
}

static bool tray_menu_dirty;

static gboolean
tray_menu_rebuild_idle(gpointer arg)
{
	if (tray_menu_dirty)
		tray_menu_rebuild(arg);
	return G_SOURCE_REMOVE;
}

/* After the item's "activate": rebuilding now would destroy it first. */
static void
tray_menu_hidden_cb(GtkWidget *menu, gpointer arg)
{
	(void)menu;
	if (tray_menu_dirty)
		g_idle_add(tray_menu_rebuild_idle, arg);
}

/* The menu is rebuilt in place (the AppIndicator exports it over D-Bus),
 * but never while it is open: that would pull it from under the user. */
static void
tray_menu_rebuild(struct tray *t)
{
	GList *kids, *l;
	GtkWidget *item;
	char *head;
	size_t i;

	if (t->menu == NULL)
		return;
	if (gtk_widget_get_visible(t->menu)) {
		tray_menu_dirty = true;
		return;
	}
	tray_menu_dirty = false;
	kids = gtk_container_get_children(GTK_CONTAINER(t->menu));
	for (l = kids; l != NULL; l = l->next)
		gtk_widget_destroy(GTK_WIDGET(l->data));
	g_list_free(kids);

	head = tray_model_headline_text(t->model);
	tray_menu_label(t->menu, head != NULL ? head : "vigil");
	free(head);
	tray_menu_separator(t->menu);
	for (i = 0; i < t->model->njobs; i++)
		tray_menu_job(t, &t->model->jobs[i]);
	if (t->model->njobs == 0)
		tray_menu_label(t->menu, t->client != NULL ? "No jobs yet: "
		    "Edit jobs… adds some" : "Jobs are shown when the service "
		    "answers");
	tray_menu_separator(t->menu);
	tray_menu_action(t, "Show progress", G_CALLBACK(tray_progress_cb));
	item = tray_menu_action(t, "History", G_CALLBACK(tray_history_cb));
	gtk_widget_set_sensitive(item, t->client != NULL);
	tray_menu_separator(t->menu);
	item = tray_menu_action(t, "Edit jobs…", G_CALLBACK(tray_edit_cb));
	gtk_widget_set_sensitive(item, t->client != NULL);
	tray_menu_separator(t->menu);
	tray_menu_action(t, "Quit", G_CALLBACK(tray_quit_cb));
}

static void
tray_status_icon_popup(struct tray *t)
{
	gtk_menu_popup_at_pointer(GTK_MENU(t->menu), NULL);
}

static void
tray_si_activate_cb(GtkStatusIcon *si, gpointer arg)
{
	(void)si;
	tray_status_icon_popup(arg);
}

static void
tray_si_popup_cb(GtkStatusIcon *si, guint button, guint when, gpointer arg)
{
	(void)si;
	(void)button;
	(void)when;
	tray_status_icon_popup(arg);
}

/* Whether a StatusNotifierItem host (watcher) runs on the session bus. */
static bool
tray_sni_host_present(void)
{
	GDBusConnection *bus;
	GVariant *v;
	GError *gerr = NULL;
	gboolean has = FALSE;

	if ((bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &gerr)) == NULL) {
		log_info("no session bus (%s)", gerr->message);
		g_error_free(gerr);
		return false;
	}
	v = g_dbus_connection_call_sync(bus, "org.freedesktop.DBus",
	    "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
	    g_variant_new("(s)", "org.kde.StatusNotifierWatcher"),
	    G_VARIANT_TYPE("(b)"), G_DBUS_CALL_FLAGS_NONE, 2000, NULL, &gerr);
	if (v == NULL) {
		log_info("cannot ask the session bus for a tray host (%s)",
		    gerr->message);
		g_error_free(gerr);
	} else {
		g_variant_get(v, "(b)", &has);
		g_variant_unref(v);
	}
	g_object_unref(bus);
	return has;
}

static void
tray_icon_create(struct tray *t)
{
	bool sni;
	AppIndicator *ind;

	if (t->icon_dir != NULL)
		gtk_icon_theme_append_search_path(gtk_icon_theme_get_default(),
		    t->icon_dir);
	switch (t->backend) {
	case TRAY_BACKEND_SNI:
		sni = true;
		break;
	case TRAY_BACKEND_XEMBED:
		sni = false;
		break;
	default:
		sni = tray_sni_host_present();
		break;
	}
	if (sni) {
		log_info("using the StatusNotifierItem icon (Ayatana "
		    "AppIndicator)");
		ind = app_indicator_new("vigil-tray", "vigil-disconnected",
		    APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
		if (t->icon_dir != NULL)
			app_indicator_set_icon_theme_path(ind, t->icon_dir);
		app_indicator_set_status(ind, APP_INDICATOR_STATUS_ACTIVE);
		app_indicator_set_menu(ind, GTK_MENU(t->menu));
		t->indicator = ind;
	} else {
		log_info("using the XEmbed status icon (no StatusNotifierItem "
		    "host on the session bus)");
		G_GNUC_BEGIN_IGNORE_DEPRECATIONS
		t->status_icon = gtk_status_icon_new_from_icon_name(
		    "vigil-disconnected");
		gtk_status_icon_set_title(t->status_icon, "vigil");
		gtk_status_icon_set_name(t->status_icon, "vigil-tray");
		gtk_status_icon_set_visible(t->status_icon, TRUE);
		G_GNUC_END_IGNORE_DEPRECATIONS
		g_signal_connect(t->status_icon, "activate",
		    G_CALLBACK(tray_si_activate_cb), t);
		g_signal_connect(t->status_icon, "popup-menu",
		    G_CALLBACK(tray_si_popup_cb), t);
	}
}

static void
tray_history_action_cb(GSimpleAction *action, GVariant *param, gpointer arg)
{
	(void)action;
	(void)param;
	tray_history_show(arg);
}

static void
tray_activate_cb(GApplication *app, gpointer arg)
{
	struct tray *t = arg;
	GSimpleAction *act;

	if (t->menu != NULL) {
		/* Started again while running: open the editor if asked. */
		return;
	}
	g_application_hold(app);
	act = g_simple_action_new("history", NULL);
	g_signal_connect(act, "activate", G_CALLBACK(tray_history_action_cb),
	    t);
	g_action_map_add_action(G_ACTION_MAP(app), G_ACTION(act));
	g_object_unref(act);

	t->menu = gtk_menu_new();
	g_object_ref_sink(t->menu);
	g_signal_connect(t->menu, "hide", G_CALLBACK(tray_menu_hidden_cb), t);
	tray_icon_create(t);
	tray_menu_rebuild(t);
	tray_connect(t);
	g_timeout_add_seconds(TRAY_REFRESH_S, tray_tick_cb, t);
	if (t->open_editor)
		tray_editor_show(t);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: vigil-tray [--socket PATH] [--backend auto|sni|xembed]\n"
"                  [--icon-dir DIR] [--edit] [-v]\n"
"\n"
"  --socket PATH    vigild's socket (default: as the vigil CLI finds it)\n"
"  --backend B      sni: an Ayatana AppIndicator; xembed: a system tray\n"
"                   icon; auto (default): sni when a StatusNotifierItem\n"
"                   host runs on the session bus, else xembed\n"
"  --icon-dir DIR   look for the vigil-*.svg icons in DIR first\n"
"  --edit           open the jobs editor at start\n"
"  -v               say more on stderr\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "backend", required_argument, NULL, 'b' },
		{ "icon-dir", required_argument, NULL, 'i' },
		{ "edit", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct tray t;
	struct passwd *pw;
	int ch, rc, verbose = 0;

	memset(&t, 0, sizeof t);
	while ((ch = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			t.socket_path = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "auto") == 0)
				t.backend = TRAY_BACKEND_AUTO;
			else if (strcmp(optarg, "sni") == 0)
				t.backend = TRAY_BACKEND_SNI;
			else if (strcmp(optarg, "xembed") == 0)
				t.backend = TRAY_BACKEND_XEMBED;
			else {
				fprintf(stderr, "vigil-tray: --backend is auto, "
				    "sni or xembed, not %s\n", optarg);
				return 2;
			}
			break;
		case 'i':
			t.icon_dir = optarg;
			break;
		case 'e':
			t.open_editor = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vigil-tray %s\n", VIGIL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("vigil-tray", LOG_TARGET_STDERR, verbose);
	pw = getpwuid(getuid());
	if ((t.model = tray_model_new(pw != NULL ? pw->pw_name : "")) == NULL) {
		fprintf(stderr, "vigil-tray: out of memory\n");
		return 1;
	}
	g_set_prgname("vigil-tray");
	g_set_application_name("vigil");
	t.app = gtk_application_new(TRAY_APP_ID, G_APPLICATION_DEFAULT_FLAGS);
	g_signal_connect(t.app, "activate", G_CALLBACK(tray_activate_cb), &t);
	/* Our options are parsed: GApplication gets none of them. */
	rc = g_application_run(G_APPLICATION(t.app), 1, argv);

	if (t.refresh_src != 0)
		g_source_remove(t.refresh_src);
	if (t.retry_src != 0)
		g_source_remove(t.retry_src);
	if (t.fd_watch != 0)
		g_source_remove(t.fd_watch);
	client_free(t.client);
	if (t.indicator != NULL)
		g_object_unref(t.indicator);
	if (t.status_icon != NULL)
		g_object_unref(t.status_icon);
	if (t.menu != NULL) {
		gtk_widget_destroy(t.menu);
		g_object_unref(t.menu);
	}
	g_object_unref(t.app);
	tray_model_free(t.model);
	return rc;
}
