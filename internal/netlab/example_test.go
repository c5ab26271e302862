package netlab_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/xlbproject/xlb/internal/netlab"
)

// A program builds a lab, stops on SIGINT/SIGTERM by cancelling its
// context, and always closes the lab on the way out.
func ExampleBuild() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	lab, err := netlab.Build(ctx, netlab.ClientGatewayBackends(2))
	if err != nil {
		log.Fatal(err)
	}
	defer lab.Close() // also runs if the code below panics

	out, err := lab.Run(ctx, netlab.HostClient, "curl", "-s", "http://"+netlab.VIP+"/")
	if err != nil {
		log.Print(err)
		return
	}
	fmt.Printf("%s", out)
	<-ctx.Done() // serve the demo until interrupted
}
