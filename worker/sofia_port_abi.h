/*
 * sofia_port_abi — the parts of Sofia-SIP's event-loop ABI that Debian's
 * libsofia-sip-ua exports but does not declare in an installed header.
 *
 * Design note.  A Sofia root (su_root_t) runs on a "port" (su_port_t), an
 * object whose first bytes are a su_home_t and a pointer to a table of
 * methods (su_port_vtable_t).  To run Sofia on our io_uring loop we supply
 * our own vtable and reuse the library's exported base implementations
 * (su_base_port_*, su_socket_port_*) for timers, messages and the mailbox.
 *
 * The names come from Sofia-SIP's su/su_port.h; the LAYOUT comes from the
 * Debian 12 library (1.12.11devel), which differs from today's source: two
 * extra vtable slots (stamp64) and three extra words in the base port.  The
 * offsets were measured by disassembling the library (see
 * ../shared/spec/architecture.md) and are pinned below with _Static_assert,
 * so a library with another layout fails the build instead of corrupting
 * memory at run time.  Only uport.c includes this file.
 */
#ifndef B2BUA_SOFIA_PORT_ABI_H
#define B2BUA_SOFIA_PORT_ABI_H

#include <stddef.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_wait.h>

enum su_port_thread_op {
	su_port_thread_op_is_obtained,
	su_port_thread_op_release,
	su_port_thread_op_obtain
};

typedef struct su_port_vtable {
	unsigned su_vtable_size;
	void (*su_port_lock)(su_port_t *port, char const *who);
	void (*su_port_unlock)(su_port_t *port, char const *who);
	void (*su_port_incref)(su_port_t *port, char const *who);
	void (*su_port_decref)(su_port_t *port, int block, char const *who);
	void *(*su_port_gsource)(su_port_t *port);
	int (*su_port_send)(su_port_t *self, su_msg_r rmsg);
	int (*su_port_register)(su_port_t *self, su_root_t *root, su_wait_t *wait,
				su_wakeup_f callback, su_wakeup_arg_t *arg, int priority);
	int (*su_port_unregister)(su_port_t *port, su_root_t *root, su_wait_t *wait,
				  su_wakeup_f callback, su_wakeup_arg_t *arg);
	int (*su_port_deregister)(su_port_t *self, int i);
	int (*su_port_unregister_all)(su_port_t *self, su_root_t *root);
	int (*su_port_eventmask)(su_port_t *self, int index, int socket, int events);
	void (*su_port_run)(su_port_t *self);
	void (*su_port_break)(su_port_t *self);
	su_duration_t (*su_port_step)(su_port_t *self, su_duration_t tout);
	int (*su_port_thread)(su_port_t *port, enum su_port_thread_op op);
	int (*su_port_add_prepoll)(su_port_t *port, su_root_t *root,
				   su_prepoll_f *, su_prepoll_magic_t *);
	int (*su_port_remove_prepoll)(su_port_t *port, su_root_t *root);
	su_timer_queue_t *(*su_port_timers)(su_port_t *port);
	int (*su_port_multishot)(su_port_t *port, int multishot);
	int (*su_port_wait_events)(su_port_t *port, su_duration_t timeout);
	int (*su_port_getmsgs)(su_port_t *port);
	int (*su_port_getmsgs_from)(su_port_t *port, su_port_t *cloneport);
	char const *(*su_port_name)(su_port_t const *port);
	int (*su_port_start_shared)(su_root_t *root, su_clone_r return_clone,
				    su_root_magic_t *magic, su_root_init_f init,
				    su_root_deinit_f deinit);
	void (*su_port_wait)(su_clone_r rclone);
	int (*su_port_execute)(su_task_r const task, int (*function)(void *), void *arg,
			       int *return_value);
	su_timer_queue_t *(*su_port_deferrable)(su_port_t *port);
	int (*su_port_max_defer)(su_port_t *port, su_duration_t *return_duration,
				 su_duration_t *set_duration);
	int (*su_port_wakeup)(su_port_t *port);
	int (*su_port_is_running)(su_port_t const *port);
	/* Debian 1.12.11devel: two more slots; su_root_stamp64() calls through 0xf8. */
	uint64_t (*su_port_stamp64)(su_port_t *port);
	uint64_t (*su_port_stamp64_offset)(su_port_t *port);
} su_port_vtable_t;

_Static_assert(offsetof(su_port_vtable_t, su_port_register) == 0x38, "Sofia ABI: register");
_Static_assert(offsetof(su_port_vtable_t, su_port_thread) == 0x78, "Sofia ABI: thread");
_Static_assert(offsetof(su_port_vtable_t, su_port_wait_events) == 0xa0, "Sofia ABI: wait_events");
_Static_assert(offsetof(su_port_vtable_t, su_port_getmsgs) == 0xa8, "Sofia ABI: getmsgs");
_Static_assert(offsetof(su_port_vtable_t, su_port_wakeup) == 0xe8, "Sofia ABI: wakeup");
_Static_assert(offsetof(su_port_vtable_t, su_port_stamp64) == 0xf8, "Sofia ABI: stamp64");
_Static_assert(sizeof(su_port_vtable_t) == 0x108, "Sofia ABI: vtable size");

/*
 * su_socket_port_t as Debian builds it: a base port (home, vtable, three
 * library-private words, prepoll, message list, timers, ...), the pthread
 * port fields, then the mailbox socket pair.  We only name what we touch.
 */
#define SOFIA_SOCKET_PORT_SIZE   0xd0
#define SOFIA_OFF_VTABLE         0x18
#define SOFIA_OFF_HEAD           0x50
#define SOFIA_OFF_MBOX_INDEX     0xc0
#define SOFIA_OFF_MBOX           0xc4

struct sofia_socket_port {
	su_home_t sup_home[1];                     /* 0x00 */
	su_port_vtable_t const *sup_vtable;        /* 0x18 */
	unsigned char sup_private[SOFIA_OFF_HEAD - 0x20];
	void *sup_head;                            /* 0x50: queued messages, NULL if none */
	unsigned char sup_private2[SOFIA_OFF_MBOX_INDEX - SOFIA_OFF_HEAD - sizeof(void *)];
	int sup_mbox_index;                        /* 0xc0 */
	int sup_mbox[2];                           /* 0xc4 */
	unsigned char sup_pad[SOFIA_SOCKET_PORT_SIZE - 0xcc];
};

_Static_assert(sizeof(su_home_t) == 0x18, "Sofia ABI: su_home_t");
_Static_assert(offsetof(struct sofia_socket_port, sup_vtable) == SOFIA_OFF_VTABLE,
	       "Sofia ABI: sup_vtable");
_Static_assert(offsetof(struct sofia_socket_port, sup_head) == SOFIA_OFF_HEAD,
	       "Sofia ABI: sup_head");
_Static_assert(offsetof(struct sofia_socket_port, sup_mbox_index) == SOFIA_OFF_MBOX_INDEX,
	       "Sofia ABI: sup_mbox_index");
_Static_assert(offsetof(struct sofia_socket_port, sup_mbox) == SOFIA_OFF_MBOX,
	       "Sofia ABI: sup_mbox");
_Static_assert(sizeof(struct sofia_socket_port) == SOFIA_SOCKET_PORT_SIZE,
	       "Sofia ABI: su_socket_port_t size");

/* Exported by libsofia-sip-ua, declared in no installed header. */
su_root_t *su_root_create_with_port(su_root_magic_t *magic, su_port_t *port);

int su_socket_port_init(su_port_t *, su_port_vtable_t const *);
void su_socket_port_deinit(su_port_t *self);
int su_socket_port_wakeup(su_port_t *self);

void su_pthread_port_lock(su_port_t *self, char const *who);
void su_pthread_port_unlock(su_port_t *self, char const *who);
int su_pthread_port_thread(su_port_t *self, enum su_port_thread_op op);
void su_pthread_port_wait(su_clone_r rclone);
int su_pthread_port_execute(su_task_r const task, int (*function)(void *), void *arg,
			    int *return_value);

void su_base_port_incref(su_port_t *self, char const *who);
int su_base_port_decref(su_port_t *self, int blocking, char const *who);
void *su_base_port_gsource(su_port_t *self);
int su_base_port_send(su_port_t *self, su_msg_r rmsg);
int su_base_port_getmsgs(su_port_t *self);
int su_base_port_getmsgs_from(su_port_t *self, su_port_t *from);
void su_base_port_run(su_port_t *self);
void su_base_port_break(su_port_t *self);
su_duration_t su_base_port_step(su_port_t *self, su_duration_t tout);
int su_base_port_add_prepoll(su_port_t *self, su_root_t *root, su_prepoll_f *,
			     su_prepoll_magic_t *);
int su_base_port_remove_prepoll(su_port_t *self, su_root_t *root);
su_timer_queue_t *su_base_port_timers(su_port_t *self);
int su_base_port_start_shared(su_root_t *parent, su_clone_r return_clone,
			      su_root_magic_t *magic, su_root_init_f init,
			      su_root_deinit_f deinit);
su_timer_queue_t *su_base_port_deferrable(su_port_t *self);
int su_base_port_max_defer(su_port_t *self, su_duration_t *return_duration,
			   su_duration_t *set_duration);
int su_base_port_is_running(su_port_t const *self);
uint64_t su_base_port_stamp64(su_port_t *self);
uint64_t su_base_port_stamp64_offset(su_port_t *self);

#endif
